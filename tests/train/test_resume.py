"""SIGKILL at any moment, resume, and end bit-identical to an uninterrupted run.

Three real processes share one checkpoint folder: the first (checkpointing
every step) is killed in the middle of saving step 4 (after DeepSpeed wrote its
files, before the rename and marker), the second resumes from step 3 and is
killed right after step 5, the third resumes from step 4, replays step 5 and
finishes. Its weights must equal, bit for bit,
those of the uninterrupted reference run, and its DVCLive folders (written every
step, so the killed runs left rows past their last checkpoint) must hold each step
exactly once, equal to the reference run's.
"""
import csv
import json
import signal

from lmforge.testing.pretrain import TINY_MODEL, run_inprocess, run_stage, tiny_pretrain
from safetensors.torch import load_file

from lmforge.train import checkpoint as C


def live_rows(work, name, root="metrics/live/pretrain"):
    return list(csv.DictReader(open(work / root / "plots/metrics" / f"{name}.tsv"), delimiter="\t"))


def test_sigkill_and_resume_is_bit_exact(reference_run, token_data, tmp_path):
    ref_work, ref_cfg, ref_metrics = reference_run
    work = tmp_path / "run"
    cfg = tiny_pretrain(*token_data, work / "models/pretrain")
    ckroot = work / "models/pretrain/checkpoints"

    every1 = dict(cfg, checkpoint_every=1)   # checkpoints don't change the maths
    p = run_stage(work, TINY_MODEL, every1, env={"LMFORGE_FAULT": "kill_in_save:4"})
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    assert C.latest(ckroot).name == C.name(3)             # the torn step-4 save is not complete
    assert (ckroot / ".step_00000004.tmp").exists()

    p = run_stage(work, TINY_MODEL, cfg, env={"LMFORGE_FAULT": "kill_after_step:5"})
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    # live rows ran ahead of the checkpoint (step 4): the next run must drop step 5 once
    assert [int(r["step"]) for r in live_rows(work, "train/loss")] == [1, 2, 3, 4, 5]
    assert "resumed from" in p.stdout and "(step 3, data position 12 rows)" in p.stdout
    assert C.latest(ckroot).name == C.name(4)
    assert not (ckroot / ".step_00000004.tmp").exists()

    p = run_stage(work, TINY_MODEL, cfg)   # replays step 5 from the step-4 checkpoint
    assert p.returncode == 0, p.stderr[-3000:]
    assert "(step 4, data position 16 rows)" in p.stdout

    ours = load_file(work / "models/pretrain/hf/model.safetensors")
    ref = load_file(ref_work / "models/pretrain/hf/model.safetensors")
    assert ours.keys() == ref.keys()
    for k in ref:
        assert ours[k].dtype == ref[k].dtype and (ours[k] == ref[k]).all(), f"{k} differs after resume"
    # the metric history continues without gaps or duplicates
    def rows(path):
        return [(int(r["step"]), r["loss"]) for r in csv.DictReader(open(path))]

    assert rows(work / "metrics/pretrain_steps.csv") == rows(ref_work / "metrics/pretrain_steps.csv")
    assert [s for s, _ in rows(work / "metrics/pretrain_steps.csv")] == list(range(1, 7))
    for name in ("train/loss", "train/lr", "train/grad_norm", "eval/val_loss"):
        tsv = f"metrics/live/pretrain/plots/metrics/{name}.tsv"
        assert (work / tsv).read_text() == (ref_work / tsv).read_text(), name
    assert [int(r["step"]) for r in live_rows(work, "train/loss")] == list(range(1, 7))
    assert [int(r["step"]) for r in live_rows(work, "eval/val_loss")] == [0, 3, 6]
    assert [float(r["loss"]) for r in live_rows(work, "train/loss")] == \
        [float(loss) for _, loss in rows(work / "metrics/pretrain_steps.csv")]
    timing = live_rows(work, "train/tokens_per_s", root="metrics/timing/live/pretrain")
    assert [int(r["step"]) for r in timing] == list(range(1, 7))
    assert not (work / "metrics/live/pretrain/plots/metrics/train/tokens_per_s.tsv").exists()
    summary = "metrics/live/pretrain/metrics.json"  # byte-equal too: key order must not depend on the replay
    assert (work / summary).read_text() == (ref_work / summary).read_text()
    assert json.loads((work / summary).read_text())["step"] == 6 and "timestamp" not in (work / tsv).read_text()
    m = json.loads((work / "metrics/pretrain.json").read_text())
    assert m["val_loss"] == ref_metrics["val_loss"]
    # retention: the last two (4, 6) plus the powers of two (1, 2, 4); 3 was pruned
    assert [s for s, _ in C.complete(ckroot)] == [1, 2, 4, 6]

    # a rerun after completion resumes at the end and trains no further
    again = run_inprocess(work, TINY_MODEL, cfg)
    assert again["steps"] == 6 and again["val_loss"] == ref_metrics["val_loss"]
