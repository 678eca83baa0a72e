"""SFT and DPO: SIGKILL mid-training, resume from the last complete checkpoint, end as an
uninterrupted run does.

Each stage runs in real processes (``support/align_resume.py``) sharing one checkpoint
folder. The first is killed while the Trainer saves checkpoint-4 (weights and optimizer
written, ``trainer_state.json`` not), the second resumes from checkpoint-2 and is killed
right after step 5 (its DVCLive rows ran past the last checkpoint), the third resumes from
checkpoint-4 and finishes. Compared with an uninterrupted run in its own process: the final
weights bit for bit, the logged loss curve, and every DVCLive file byte for byte (each step
exactly once; the Trainer's final ``train_loss`` is the whole run's, not the resumed part's).
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

SCRIPT = Path(__file__).parents[1] / "support" / "align_resume.py"
REPO = Path(__file__).resolve().parents[2]


def run(stage, work, base, instr, fault=None):
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return subprocess.run([sys.executable, str(SCRIPT), stage, str(work), str(base), str(instr),
                           *([fault] if fault else [])], env=env, capture_output=True, text=True, timeout=600)


def result(p):
    assert p.returncode == 0, p.stderr[-4000:]
    return json.loads(p.stdout.split("RESULT ", 1)[1].splitlines()[0])


def steps_logged(work, stage):
    tsv = work / f"metrics/live/{stage}/plots/metrics/loss.tsv"
    return [int(line.split("\t")[0]) for line in tsv.read_text().splitlines()[1:]]


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_sigkill_mid_training_then_resume_ends_as_an_uninterrupted_run(stage, base_dir, instr_dir, tmp_path):
    ref = result(run(stage, tmp_path / "ref", base_dir, instr_dir))
    work, ckroot = tmp_path / "run", tmp_path / "run" / f"{stage}_checkpoints"

    p = run(stage, work, base_dir, instr_dir, "kill_in_save:4")
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    assert (ckroot / "checkpoint-4").is_dir() and not (ckroot / "checkpoint-4/trainer_state.json").exists()
    assert (ckroot / "checkpoint-2/trainer_state.json").is_file()

    p = run(stage, work, base_dir, instr_dir, "kill_after_step:5")
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    assert f"removed the incomplete checkpoint {ckroot / 'checkpoint-4'}" in p.stdout
    assert "resuming from" in p.stdout and "(step 2)" in p.stdout
    assert steps_logged(work, stage) == [1, 2, 3, 4, 5]   # live rows past the step-4 checkpoint

    p = run(stage, work, base_dir, instr_dir)
    ours = result(p)
    assert "(step 4)" in p.stdout
    assert ours["steps"] == ref["steps"] == 6
    assert ours["curve"] == ref["curve"]
    a, b = load_file(ours["weights"]), load_file(ref["weights"])
    assert a.keys() == b.keys()
    for k in b:
        assert (a[k] == b[k]).all(), f"{k} differs after resume"
    # DVCLive: every file byte for byte, the Trainer's final train_loss (whole run) and the summary included
    live = work / f"metrics/live/{stage}"
    files = sorted(p.relative_to(live) for p in live.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "ref" / live.relative_to(work))
                           for p in (tmp_path / "ref" / live.relative_to(work)).rglob("*") if p.is_file())
    assert "metrics.json" in map(str, files) and "plots/metrics/train/loss.tsv" in map(str, files)
    for f in files:
        assert (live / f).read_text() == (tmp_path / "ref" / live.relative_to(work) / f).read_text(), f
    assert steps_logged(work, stage) == list(range(1, 7))
    assert sorted(c.name for c in ckroot.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]   # keep_last 2
    assert not (work / stage / "checkpoint-6").exists()   # the exported model folder holds no checkpoint
    # nothing in the persisted folder differs between runs of one commit (TRL's draft card, with tags in
    # set order, is not written); training_args.bin holds output_dir, the one path-dependent file
    assert sorted(p.name for p in ckroot.iterdir()) == ["RUN.json", "checkpoint-4", "checkpoint-6"]
    ref_ck = tmp_path / "ref" / f"{stage}_checkpoints" / "checkpoint-6"
    for f in (ckroot / "checkpoint-6").iterdir():
        if f.name != "training_args.bin":
            assert f.read_bytes() == (ref_ck / f.name).read_bytes(), f.name


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_rerunning_a_finished_run_gives_the_same_run(stage, base_dir, instr_dir, tmp_path):
    """`dvc repro` reruns a finished stage when only its code changed: resuming its last checkpoint
    trained one step more (36 of 35 in the default pipeline's sft) and changed the model."""
    work = tmp_path / "run"
    first = result(run(stage, work, base_dir, instr_dir))
    p = run(stage, work, base_dir, instr_dir)
    again = result(p)
    assert "ends the run" in p.stdout and "(step 4)" in p.stdout
    assert again["steps"] == first["steps"] == 6 and again["curve"] == first["curve"]
    a, b = load_file(again["weights"]), load_file(first["weights"])
    assert all((a[k] == b[k]).all() for k in b)
    assert steps_logged(work, stage) == list(range(1, 7))
