"""DPO recipe sweep on the current pipeline's inputs: how far each (lr, beta, steps) moves
the policy from SFT and whether the dpo gate still passes.

Why it exists: the tiny default's DPO either barely moved (token KL ~0.007) or collapsed to
empty replies; picking `dpo.train.lr`, `dpo.beta` and `dpo.train.max_steps` needs the same
measurements side by side. Each row trains DPO from models/sft on data/preferences with
params.yaml's dpo section, overriding only the swept knobs, and prints the gate's figures,
W/T/L against SFT under the reward model and the token KL. Row 0 is the baseline the others
are read against. Nothing under models/ or metrics/ is written.

    python bench/dpo_sweep.py 1e-5,0.1,20 5e-5,0.1,20,1.0 ...   # lr,beta,steps[,sft_weight] per row
    SWEEP_SEED=1 python bench/dpo_sweep.py 2e-5,0.1,20             # the same row under another seed
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time

from lmforge.align.dpo import DPOStageConfig, train_dpo
from lmforge.align.evaluate import gate_failures
from lmforge.align.preferences import PreferenceConfig
from lmforge.config import load_params, section


def run(lr: float, beta: float, steps: int, sft_weight: float, seed: int) -> dict:
    p, pref = section(DPOStageConfig, "dpo"), section(PreferenceConfig, "preferences")
    with tempfile.TemporaryDirectory() as tmp:
        p = dataclasses.replace(p, beta=beta, sft_weight=sft_weight, rejection_out=f"{tmp}/rs.parquet",
                                train=dataclasses.replace(p.train, lr=lr, max_steps=steps))
        t0 = time.perf_counter()
        _, _, m, _, samples = train_dpo(p, pref, seed, work_dir=f"{tmp}/work")
        m["seconds"] = time.perf_counter() - t0
    m["failures"] = gate_failures("dpo", m, p.eval.gate)
    m["sample"] = samples[0][2] if samples else ""
    return m


def main(rows: list[str]) -> None:
    seed = int(os.environ.get("SWEEP_SEED", load_params()["seed"]))   # another seed: the spread of a row
    print("| lr | beta | steps | sft_weight | empty | < 5 words | repetition | mean words | W / T / L | KL (token) "
          "| gate |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        lr, beta, steps, sft_weight = (row.split(",") + ["0"])[:4]
        m = run(float(lr), float(beta), int(steps), float(sft_weight), seed)
        gate = "PASSED" if not m["failures"] else "FAILED: " + "; ".join(m["failures"])
        print(f"| {lr} | {beta} | {steps} | {sft_weight} | {m['empty_share']:.3g} | {m['short_share']:.3g} | "
              f"{m.get('repetition') or float('nan'):.2f} | {m['mean_words']:.1f} | "
              f"{m['wins']} / {m['ties']} / {m['losses']} | {m['kl_token']:.3g} | {gate} |", flush=True)
        print(json.dumps({k: v for k, v in m.items() if not isinstance(v, (list, dict))} | {"row": row,
              "sample": m["sample"]}), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["1e-5,0.1,20"])
