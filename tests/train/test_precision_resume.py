"""A checkpoint written in one precision (or ZeRO stage) is never resumed by another.

Defect 5 of issue 20: the fingerprint held ``precision: auto``, so a CPU fp32 checkpoint
was resumed into a GPU bf16 engine and crashed. Now the precision actually used and the
ZeRO stage are part of the fingerprint: a bf16 run over an fp32 run's folder sets that run
aside naming both layouts and trains afresh; a checkpoint whose recorded layout does not
match the engine (copied in by hand) is refused with one line naming both.
"""
import json
import shutil

import pytest
from lmforge.testing.pretrain import TINY_MODEL, run_inprocess, tiny_pretrain

from lmforge.stage import InputError
from lmforge.train import checkpoint as C
from lmforge.train import dist as D


def test_fp32_checkpoint_is_not_resumed_in_bf16(reference_run, token_data, tmp_path, capsys, monkeypatch):
    """``precision: auto`` on both sides, as in the defect: fp32 on the CPU, then bf16 where there is bf16."""
    ref_work, _, ref_metrics = reference_run
    work = tmp_path / "run"
    shutil.copytree(ref_work / "models", work / "models")
    cfg = tiny_pretrain(*token_data, work / "models/pretrain", max_steps=2, eval_every=2, checkpoint_every=2)

    capsys.readouterr()
    monkeypatch.setattr(D, "native_bf16", lambda: True)    # a GPU with bf16, as far as `auto` can tell
    m = run_inprocess(work, TINY_MODEL, cfg)
    out = capsys.readouterr().out
    assert "fp32 on cpu, ZeRO stage 0" in out and "this run" in out and "bf16 on cpu, ZeRO stage 0" in out
    assert "resumed from" not in out and m["precision"] == "bf16" and m["steps"] == 2
    stale = list((work / "models/pretrain").glob("checkpoints-stale-*"))
    assert len(stale) == 1 and C.latest(stale[0]).name == C.name(6)      # the fp32 run, kept
    state = json.loads((C.latest(work / "models/pretrain/checkpoints") / "trainer_state.json").read_text())
    assert state["precision"] == "bf16" and state["device"] == "cpu" and state["zero_stage"] == 0


def test_a_checkpoint_whose_layout_differs_is_refused_naming_both(reference_run, token_data, tmp_path):
    ref_work, _, _ = reference_run
    work = tmp_path / "run"
    shutil.copytree(ref_work / "models", work / "models")
    newest = C.latest(work / "models/pretrain/checkpoints")
    state = json.loads((newest / "trainer_state.json").read_text())
    (newest / "trainer_state.json").write_text(json.dumps(dict(state, precision="bf16", device="cuda")))
    with pytest.raises(InputError, match=r"saved in bf16 on cuda, ZeRO stage 0, this run trains in fp32 on cpu"):
        run_inprocess(work, TINY_MODEL, tiny_pretrain(*token_data, work / "models/pretrain"))


def test_another_zero_stage_over_an_existing_run_trains_afresh(reference_run, token_data, tmp_path, capsys):
    """``dvc exp run -S pretrain.zero_stage=1`` over a ZeRO-0 run: set aside, not refused (defect 8)."""
    ref_work, _, _ = reference_run
    work = tmp_path / "run"
    shutil.copytree(ref_work / "models", work / "models")
    cfg = tiny_pretrain(*token_data, work / "models/pretrain", max_steps=2, eval_every=2, checkpoint_every=2,
                        zero_stage=1)
    capsys.readouterr()
    m = run_inprocess(work, TINY_MODEL, cfg)
    out = capsys.readouterr().out
    assert "fp32 on cpu, ZeRO stage 0" in out and "fp32 on cpu, ZeRO stage 1" in out and "resumed from" not in out
    assert m["zero_stage"] == 1 and m["steps"] == 2
    assert len(list((work / "models/pretrain").glob("checkpoints-stale-*"))) == 1
