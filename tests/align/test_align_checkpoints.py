"""Which SFT/DPO checkpoint a run continues: only a complete one, only of the same run (params,
seed, input bytes); another run's folder is set aside, never continued, and comes back with its
settings. (The SIGKILL-and-resume run itself: test_align_resume.py.)"""
import json
import logging

import pytest

from lmforge.align import checkpoints as ckpt
from lmforge.config import ParamsError, build


def checkpoint(root, step, complete=True, max_steps=100):
    d = root / f"checkpoint-{step}"
    d.mkdir(parents=True)
    (d / "model.safetensors").write_bytes(b"w")
    if complete:
        (d / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": max_steps,
                                                          "log_history": []}))
    return d


def said(caplog) -> str:
    """The log lines since the last call."""
    text = caplog.text
    caplog.clear()
    return text


def test_only_this_runs_complete_checkpoints_are_resumed(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="lmforge.align.checkpoints")
    root = tmp_path / "sft_checkpoints"
    ck = ckpt.CheckpointConfig(dir=str(root), every=2)
    assert ckpt.prepare(ck, "a" * 64, "sft") is None                      # nothing yet: afresh
    assert json.loads((root / "RUN.json").read_text()) == {"fingerprint": "a" * 64}
    checkpoint(root, 2)
    checkpoint(root, 4, complete=False)                                   # killed mid-save
    (root / "checkpoint-6").mkdir()
    (root / "checkpoint-6" / "trainer_state.json").write_text("{torn")    # killed mid-write
    assert ckpt.prepare(ck, "a" * 64, "sft") == str(root / "checkpoint-2")
    assert sorted(p.name for p in root.iterdir()) == ["RUN.json", "checkpoint-2"]
    assert "removed the incomplete checkpoint" in said(caplog)

    assert ckpt.prepare(ck, "b" * 64, "sft") is None                      # other params or data: set aside
    stale = tmp_path / f"sft_checkpoints-stale-{'a' * 12}"
    assert (stale / "checkpoint-2/trainer_state.json").exists() and "not resumed" in said(caplog)
    checkpoint(root, 2)
    assert ckpt.prepare(ck, "a" * 64, "sft") == str(root / "checkpoint-2")   # back: its own folder returns
    assert json.loads((root / "RUN.json").read_text())["fingerprint"] == "a" * 64
    assert (tmp_path / f"sft_checkpoints-stale-{'b' * 12}" / "checkpoint-2").is_dir()
    assert "brought back" in said(caplog)


def test_the_last_steps_checkpoint_is_replayed_from_the_one_before(tmp_path, caplog):
    """Resuming a run's final checkpoint, transformers 5 trains one step past max_steps (a rerun of a
    finished sft stage gave 36 steps, not 35, and another model)."""
    caplog.set_level(logging.INFO, logger="lmforge.align.checkpoints")
    root = tmp_path / "sft_checkpoints"
    ck = ckpt.CheckpointConfig(dir=str(root), every=10)
    ckpt.prepare(ck, "a" * 64, "sft")
    checkpoint(root, 35, max_steps=35)
    assert ckpt.prepare(ck, "a" * 64, "sft") is None          # the only one ends the run: afresh
    assert "ends the run" in said(caplog)
    checkpoint(root, 30, max_steps=35)
    assert ckpt.prepare(ck, "a" * 64, "sft") == str(root / "checkpoint-30")
    assert "(step 30)" in said(caplog)
    assert (root / "checkpoint-35").is_dir()                   # kept: the replay writes it again


def test_no_checkpoints_when_every_is_zero_or_there_is_no_folder(tmp_path):
    for ck in (ckpt.CheckpointConfig(dir=str(tmp_path / "c"), every=0), ckpt.CheckpointConfig()):
        assert ck.trainer_kwargs() == {"save_strategy": "no"}
        assert ckpt.prepare(ck, "a" * 64, "dpo") is None
    assert not (tmp_path / "c").exists()
    on = ckpt.CheckpointConfig(dir="models/dpo_checkpoints", every=5, keep_last=3).trainer_kwargs()
    assert on == {"output_dir": "models/dpo_checkpoints", "save_strategy": "steps", "save_steps": 5,
                  "save_total_limit": 3, "save_only_model": False}
    with pytest.raises(ParamsError, match="checkpoints.every must be >= 0"):
        build(ckpt.CheckpointConfig, {"every": -1}, "sft.checkpoints")


def test_the_fingerprint_follows_params_seed_and_input_bytes(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.parquet").write_bytes(b"rows")
    base = ckpt.fingerprint({"lr": 1e-3}, 0, [data, tmp_path / "missing.parquet"])
    assert ckpt.fingerprint({"lr": 1e-3}, 0, [data, tmp_path / "missing.parquet"]) == base
    assert ckpt.fingerprint({"lr": 2e-3}, 0, [data, tmp_path / "missing.parquet"]) != base
    assert ckpt.fingerprint({"lr": 1e-3}, 1, [data, tmp_path / "missing.parquet"]) != base
    (data / "train.parquet").write_bytes(b"other rows")
    assert ckpt.fingerprint({"lr": 1e-3}, 0, [data, tmp_path / "missing.parquet"]) != base
