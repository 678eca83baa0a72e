"""The tests' tiny pretraining at several ZeRO stages in one launched process group.

``python -m torch.distributed.run --nproc_per_node 2 pretrain_stages.py WORK TOKENS TOKENIZER MICRO STAGE...``
runs each stage in turn (one DeepSpeed start-up per launch, not per stage) and prints, on
rank 0, ``RESULT {json}``: per stage the logged step losses and the run's metrics.
"""
import csv
import json
import os
import sys
from pathlib import Path

from lmforge.testing.pretrain import TINY_MODEL, run_inprocess, tiny_pretrain

COMMON = dict(max_steps=3, eval_every=3, checkpoint_every=3)   # 4 rows of 64 tokens a step


def run(work: Path, tokens: str, tokenizer: str, micro: int, stage: int) -> dict:
    w = work / f"zero{stage}"
    m = run_inprocess(w, TINY_MODEL, tiny_pretrain(tokens, tokenizer, w / "models/pretrain", zero_stage=stage,
                                                  micro_batch_size=micro, **COMMON))
    losses = [float(r["loss"]) for r in csv.DictReader(open(w / "metrics/pretrain_steps.csv"))] \
        if os.environ.get("RANK", "0") == "0" else []
    return {"losses": losses, "metrics": m}


if __name__ == "__main__":
    work, tokens, tokenizer, micro = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    res = {s: run(work, tokens, tokenizer, micro, int(s)) for s in sys.argv[5:]}
    if os.environ.get("RANK", "0") == "0":
        print("RESULT " + json.dumps(res))
