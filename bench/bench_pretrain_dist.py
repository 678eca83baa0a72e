"""Pretraining on CPU across processes: 2 vs 1 process, and ZeRO-3 vs ZeRO-0 on 2.

Runs the real ``stages.pretrain`` three times in one go on the same token shards
(the tests' seeded Markov stream) and the same global batch: one process at
ZeRO-0 (the baseline), two gloo processes under ``torchrun`` at ZeRO-0, and two at
ZeRO-3 (built under ``zero.Init``). For each it prints the steady-state training
tokens/s (median over the steps after the first fifth, from the stage's own
``metrics/timing/pretrain_steps.csv``), the ratio to the baseline, and the largest
peak RSS of any process the run started. With two cores, 2 processes can at best
double throughput; ZeRO-3 trades speed for memory, so its ratio is expected below 1.

    python bench/bench_pretrain_dist.py [--depth 4] [--steps 30]
"""
from __future__ import annotations

import argparse
import csv
import json
import resource
import statistics
import sys
import tempfile
from pathlib import Path

import _support  # noqa: F401 - first: this checkout's lmforge on sys.path (bench/_support.py)

from lmforge.testing.pretrain import markov_tokens, run_stage  # noqa: E402

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def one(work: Path, name: str, depth: int, steps: int, zero: int, launcher) -> dict:
    run = work / name
    cfg = {"tokens_dir": str(work / "tokens"), "tokenizer_dir": str(work / "no-tokenizer"),
           "out_dir": str(run / "models/pretrain"), "max_steps": steps, "global_batch_tokens": 1024,
           "micro_batch_size": 4, "lr": 3e-3, "eval_every": steps, "eval_rows": 8,
           "checkpoint_every": 10**9, "progress": False, "threads": 1, "zero_stage": zero}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    p = run_stage(run, {"size": "tiny", "depth": depth}, cfg, launcher=launcher, timeout=1800)
    if p.returncode != 0:
        sys.exit(f"{name} failed:\n{p.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    rows = list(csv.DictReader(open(run / "metrics/timing/pretrain_steps.csv")))
    steady = rows[len(rows) // 5:] or rows
    m = json.loads((run / "metrics/pretrain.json").read_text())
    return {"tokens_per_s": statistics.median(float(r["tokens_per_s"]) for r in steady),
            "peak_rss_mb": round(max(peak, before) / 1024), "val_loss": m["val_loss"],
            "world_size": m["world_size"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--steps", type=int, default=30)
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="lmforge-bench-dist-"))
    markov_tokens(work / "tokens", rows=(max(96, a.steps * 16 + 16), 16))
    runs = {"1 process, ZeRO-0": one(work, "p1z0", a.depth, a.steps, 0, None),
            "2 processes, ZeRO-0": one(work, "p2z0", a.depth, a.steps, 0, TORCHRUN),
            "2 processes, ZeRO-3": one(work, "p2z3", a.depth, a.steps, 3, TORCHRUN)}
    base = runs["1 process, ZeRO-0"]["tokens_per_s"]
    z0 = runs["2 processes, ZeRO-0"]["tokens_per_s"]
    print(f"model depth {a.depth}, {a.steps} steps, global batch 1024 tokens, work {work}")
    for name, r in runs.items():
        print(f"  {name:22s} {r['tokens_per_s']:9,.0f} tok/s  ratio {r['tokens_per_s'] / base:5.2f}  "
              f"largest process peak RSS {r['peak_rss_mb']:5d} MB  val_loss {r['val_loss']:.4f}")
    print(f"2 vs 1 process (ZeRO-0): {z0 / base:.2f}x; ZeRO-3 vs ZeRO-0 (2 processes): "
          f"{runs['2 processes, ZeRO-3']['tokens_per_s'] / z0:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
