"""SFT step cost: lmforge's weighted token loss against TRL's own SFT loss.

lmforge's SFT always computes its loss in ``WeightedSFTTrainer.compute_loss``
(plain token cross-entropy scaled by per-source weights); TRL 1.16's default goes
through its chunked log-prob kernel and also computes entropy and accuracy metrics.
Both trainers are built from the same params, data and model and timed on the
same batches, interleaved (weighted, TRL, weighted, ...) so machine load hits both
alike. Prints seconds per optimizer step and the ratio TRL / lmforge.

    .venv/bin/python bench/bench_sft_loss.py [--steps 10] [--base-model DIR]
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
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--base-model", default=None, help="default: a tiny Llama built on the fly")
    args = ap.parse_args()

    import pandas as pd
    import torch
    from trl import SFTTrainer

    from lmforge.align.instructions import InstructionsConfig, check_and_split
    from lmforge.align.sft import SFTStageConfig, build_trainer, to_dataset
    from lmforge.config import build

    tmp = Path(tempfile.mkdtemp(prefix="bench-sft-"))
    base = args.base_model
    if base is None:
        from lmforge.testing.align import make_llama

        df = pd.read_parquet(REPO / "data/instructions/pairs.parquet")
        base = str(make_llama(tmp / "base", (df.prompt + "\n" + df.response).tolist(), vocab=2048, hidden=128))
    check_and_split(InstructionsConfig(path=str(REPO / "data/instructions/pairs.parquet"), out_dir=str(tmp / "i")),
                    str(tmp / "gx.json"))
    p = build(SFTStageConfig, {"base_model": base, "data_dir": str(tmp / "i"), "feedback_dir": str(tmp / "none"),
                          "train": {"max_steps": 1000, "batch_size": 8}}, "sft")
    ours, tok, df = build_trainer(p, 0)
    theirs = SFTTrainer(model=ours.model, args=ours.args, train_dataset=to_dataset(df, False), processing_class=tok)
    opt = torch.optim.AdamW(ours.model.parameters(), lr=1e-4)

    def step(trainer, batch) -> float:
        t = time.perf_counter()
        loss = trainer.compute_loss(trainer.model, dict(batch))
        loss.backward()
        opt.step()
        opt.zero_grad()
        return time.perf_counter() - t

    ours.model.train()
    times = {"lmforge": [], "trl": []}
    for i in range(args.steps + 1):
        rows = range(i * 8, i * 8 + 8)
        b_ours = ours.data_collator([ours.train_dataset[j] for j in rows])
        b_trl = theirs.data_collator([theirs.train_dataset[j] for j in rows])
        t_ours, t_trl = step(ours, b_ours), step(theirs, b_trl)
        if i:  # the first step warms up allocators
            times["lmforge"].append(t_ours)
            times["trl"].append(t_trl)
    a, b = statistics.median(times["lmforge"]), statistics.median(times["trl"])
    print(f"median s/step over {args.steps} steps, batch 8: lmforge weighted loss {a:.3f}, TRL loss {b:.3f}")
    print(f"ratio TRL / lmforge: {b / a:.2f}x")


if __name__ == "__main__":
    main()
