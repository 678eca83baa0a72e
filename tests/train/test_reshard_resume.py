"""Resume on another number of processes: 1 -> 2 -> 1 through DeepSpeed universal checkpoints.

At ZeRO-2 and ZeRO-3. ZeRO-3 was 7.4e-4 off before issue 20: DeepSpeed 0.19.8's universal
load shares one AdamW ``step`` tensor between the parameter groups, which then advanced twice
per step (lmforge.train.checkpoint.own_step_counters gives each its own).

An uninterrupted one-process ZeRO run (8 rows a step: 2 micro-batches of 4) is
the reference. Its step-2 checkpoint is resumed by two processes (1 micro-batch
each, the same 8 rows a step), killed after step 4, and that step-4 checkpoint,
saved by two ranks, is resumed by one process to the end. The data position is
global, so every row is trained on exactly once in the same order; only the
order of floating-point sums differs between layouts.
"""
import csv
import shutil
import sys

import pytest
from lmforge.testing.pretrain import TINY_MODEL, run_inprocess, run_stage, tiny_pretrain

from lmforge.train import checkpoint as C

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
TOLERANCE = 1e-4   # relative, per logged loss: summation order only


def losses(work):
    return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(open(work / "metrics/pretrain_steps.csv"))]


@pytest.mark.parametrize("stage", [2, 3])
def test_resume_on_two_then_one_process_continues_the_same_run(stage, token_data, tmp_path):
    def recipe(work):
        return tiny_pretrain(*token_data, work / "models/pretrain", zero_stage=stage, global_batch_tokens=512,
                             eval_every=6, checkpoint_every=2)

    ref = tmp_path / "ref"
    ref_metrics = run_inprocess(ref, TINY_MODEL, recipe(ref))
    work = tmp_path / "run"
    shutil.copytree(ref / "models", work / "models")
    for step, path in C.complete(work / "models/pretrain/checkpoints"):
        if step > 2:
            shutil.rmtree(path)

    p = run_stage(work, TINY_MODEL, recipe(work), launcher=TORCHRUN, env={"LMFORGE_FAULT": "kill_after_step:4"})
    assert p.returncode != 0 and C.latest(work / "models/pretrain/checkpoints").name == C.name(4), p.stderr[-3000:]
    assert "(step 2, data position 16 rows, resharded from 1 to 2 process(es))" in p.stdout, p.stdout[-2000:]
    assert (work / "models/pretrain/checkpoints" / C.name(2) / C.UNIVERSAL / "zero").is_dir()

    m = run_inprocess(work, TINY_MODEL, recipe(work))
    got, want = losses(work), losses(ref)
    assert [s for s, _ in got] == [s for s, _ in want] == list(range(1, 7))
    assert [x for _, x in got] == pytest.approx([x for _, x in want], rel=TOLERANCE)
    print(f"ZeRO-{stage} 1->2->1 resume: largest relative loss difference {max(abs(a - b) / b for (_, a), (_, b) in zip(got, want)):.1e}")
    assert m["tokens"] == ref_metrics["tokens"] == 6 * 8 * 64      # every row once, none twice
    assert m["world_size"] == 1 and m["val_loss"] == pytest.approx(ref_metrics["val_loss"], rel=TOLERANCE)
