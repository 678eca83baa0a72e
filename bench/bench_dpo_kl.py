"""DPO KL curve cost: one KL probe measurement against one DPO training step.

TRL 1.16's DPOTrainer logs no KL, so the dpo stage measures the token KL of the policy
from the SFT reference on ``dpo.kl_probe`` held-out pairs at every logging step
(``lmforge.align.dpo.kl_callback``). This times that measurement against the training
step it rides on (TRL's forward and backward over a batch of pairs, policy and
reference), both on the same trainer, interleaved (step, probe, step, ...) so machine
load hits both alike. Prints median seconds of each and the ratio probe / step, which
is the share the KL curve adds to DPO's training loop when it logs every step.

    .venv/bin/python bench/bench_dpo_kl.py [--steps 8] [--probe 8] [--sft-model DIR]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from _support import REPO  # first: this checkout's lmforge on sys.path (bench/_support.py)

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--probe", type=int, default=8, help="held-out pairs in the probe (params: dpo.kl_probe)")
    ap.add_argument("--sft-model", default=None, help="default: models/sft if present, else a tiny Llama")
    args = ap.parse_args()

    import pandas as pd

    from lmforge.align.common import load_causal_lm, load_tokenizer
    from lmforge.align.dpo import DPOStageConfig, dpo_trainer
    from lmforge.config import build

    tmp = Path(tempfile.mkdtemp(prefix="bench-dpo-kl-"))
    df = pd.read_parquet(REPO / "data/instructions/pairs.parquet")
    sft = args.sft_model or (str(REPO / "models/sft") if (REPO / "models/sft/config.json").exists() else None)
    if sft is None:
        from lmforge.testing.align import make_llama

        sft = str(make_llama(tmp / "base", (df.prompt + "\n" + df.response).tolist(), vocab=2048, hidden=128))
    pairs = pd.DataFrame({"prompt": df.prompt, "chosen": df.response,
                          "rejected": df.response.sample(frac=1.0, random_state=0).values})
    pairs = pairs[pairs.chosen != pairs.rejected].head(200 + args.probe).reset_index(drop=True)
    p = build(DPOStageConfig, {"sft_model": sft, "kl_probe": args.probe,
                          "train": {"max_steps": 1000, "batch_size": 8, "max_length": 256}}, "dpo")
    tok = load_tokenizer(sft)
    policy, ref = load_causal_lm(sft, "sft"), load_causal_lm(sft, "sft")
    probe = pairs.tail(args.probe)
    trainer = dpo_trainer(p, policy, ref, tok, pairs.head(len(pairs) - args.probe), 0, str(tmp / "work"),
                          probe=probe)
    kl = next(c for c in trainer.callback_handler.callbacks if type(c).__name__ == "_KL")
    trainer.create_optimizer_and_scheduler(num_training_steps=1000)
    trainer.current_gradient_accumulation_steps = 1   # set by Trainer.train(); training_step reads it
    batches = iter(trainer.get_train_dataloader())
    model = trainer.model

    def step() -> float:
        t = time.perf_counter()
        trainer.training_step(model, next(batches))
        return time.perf_counter() - t

    def measure() -> float:
        t = time.perf_counter()
        logs = {"loss": 0.0}
        kl.on_log(trainer.args, trainer.state, trainer.control, model=model, logs=logs)
        assert logs["kl"] >= 0
        return time.perf_counter() - t

    model.train()
    times = {"step": [], "probe": []}
    for i in range(args.steps + 1):
        t_step, t_probe = step(), measure()
        if i:  # the first round warms up allocators
            times["step"].append(t_step)
            times["probe"].append(t_probe)
    a, b = statistics.median(times["step"]), statistics.median(times["probe"])
    print(f"model {sft}; median s over {args.steps} rounds: DPO step (batch 8) {a:.3f}, "
          f"KL probe ({args.probe} pairs) {b:.3f}")
    print(f"ratio probe / step: {b / a:.2f}x")


if __name__ == "__main__":
    main()
