"""Stages eval_pretrain, eval_sft, eval_dpo: the lm-eval tasks of evals/tasks on one model folder.

    python -m stages.evaluate <model dir> <metrics json> <timing json>

Paths come from dvc.yaml; params `evals` choose the tasks and the subsample (`limit`, or `full`).
A failed `evals.gate` threshold exits non-zero after the metrics are written, like the
post-training gates. The scores (no timing, so two runs give the same file) go to the metrics
JSON for `dvc metrics diff`; seconds go to the timing JSON under metrics/timing/, which is not
a stage output.
"""
from __future__ import annotations

import argparse
import time

from lmforge.config import section
from lmforge.evals.harness import EvalsConfig, evaluate, gate_failures
from lmforge.gates import enforce, verdict
from lmforge.io import write_json
from lmforge.stage import run_stage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("metrics")
    ap.add_argument("timing")
    args = ap.parse_args()
    cfg = section(EvalsConfig, "evals")
    t0 = time.perf_counter()
    scores = evaluate(args.model, cfg)
    seconds = round(time.perf_counter() - t0, 1)
    failures = gate_failures(scores, cfg.gate)
    write_json(args.metrics, {"model": args.model, "limit": cfg.item_limit, "tasks": scores,
                              **verdict(failures)})
    write_json(args.timing, {"seconds": seconds})
    print(f"evaluate {args.model}: " + "; ".join(
        f"{t} " + ", ".join(f"{k}={v:.4g}" for k, v in s.items() if k in ("acc", "bits_per_byte", "refusal_rate"))
        for t, s in scores.items()) + f" ({seconds} s)")
    enforce(f"{args.model} eval", failures, cfg.gate.mode, "thresholds: params.yaml evals.gate")


if __name__ == "__main__":
    run_stage(main)
