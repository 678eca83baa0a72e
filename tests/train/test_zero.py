"""ZeRO stages 0-3 on CPU in one process, export (incl. ZeRO-3) and the NaN policy."""
import math

import pytest
from lmforge.testing.pretrain import TINY_MODEL, run_inprocess, tiny_pretrain, val_loss_of

from lmforge.train import trainer as T


@pytest.fixture(scope="module")
def stage_runs(token_data, reference_run, tmp_path_factory):
    tokens, tok = token_data
    runs = {0: reference_run[2]}
    for stage in (1, 2, 3):
        work = tmp_path_factory.mktemp(f"zero{stage}")
        cfg = tiny_pretrain(tokens, tok, work / "models/pretrain", zero_stage=stage, max_steps=3,
                            eval_every=3, checkpoint_every=3)
        runs[stage] = run_inprocess(work, TINY_MODEL, cfg)
    return runs


def test_all_zero_stages_train_alike(stage_runs, reference_run):
    work = reference_run[0]
    import csv

    ref = [float(r["loss"]) for r in csv.DictReader(open(work / "metrics/pretrain_steps.csv"))][:3]
    for stage in (1, 2, 3):
        m = stage_runs[stage]
        assert m["zero_stage"] == stage and m["steps"] == 3
        # same initial weights and data: stages partition the same maths differently
        assert m["init_val_loss"] == pytest.approx(stage_runs[0]["init_val_loss"], rel=1e-6)
        assert m["val_loss"] < m["init_val_loss"]
        assert m["train_loss"] == pytest.approx(ref[2], rel=1e-3)


@pytest.mark.parametrize("stage", [0, 3])
def test_export_loads_offline_and_reproduces_val_loss(stage, stage_runs, reference_run, token_data, tmp_path):
    from transformers import AutoTokenizer

    m = stage_runs[stage]
    hf = m["checkpoint"].replace("checkpoints", "hf").rsplit("/", 1)[0]
    loss, model = val_loss_of(hf, token_data[0], 8, 4)
    assert loss == pytest.approx(m["val_loss"], abs=1e-5)
    assert type(model).__name__ == "LlamaForCausalLM"
    tok = AutoTokenizer.from_pretrained(hf)
    assert tok.eos_token == "<|eos|>" and len(tok) == model.config.vocab_size
    # the exporter works on any complete checkpoint, e.g. a ZeRO-3 one, from the command line
    from lmforge.train.export import main

    assert main([m["checkpoint"], str(tmp_path / "again"), "--tokenizer", str(token_data[1])]) == 0
    assert val_loss_of(tmp_path / "again", token_data[0], 8, 4)[0] == pytest.approx(loss, abs=1e-6)


def _nan_at(monkeypatch, call):
    real, calls = T.lm_loss, {"n": 0}

    def fake(logits, y, reduction="mean"):
        out = real(logits, y, reduction)
        if reduction == "mean":
            calls["n"] += 1
            if calls["n"] == call:
                return out * float("nan")
        return out

    monkeypatch.setattr(T, "lm_loss", fake)


def test_nan_policy_stop(monkeypatch, token_data, tmp_path):
    _nan_at(monkeypatch, 2)
    cfg = tiny_pretrain(*token_data, tmp_path / "models/pretrain", max_steps=3, nan_policy="stop")
    with pytest.raises(T.NonFiniteLoss, match=r"non-finite loss nan at step 2 .*nan_policy=stop"):
        run_inprocess(tmp_path, TINY_MODEL, cfg)


def test_nan_policy_skip(monkeypatch, token_data, tmp_path, capsys):
    _nan_at(monkeypatch, 2)
    cfg = tiny_pretrain(*token_data, tmp_path / "models/pretrain", max_steps=3, nan_policy="skip",
                        checkpoint_every=3)
    m = run_inprocess(tmp_path, TINY_MODEL, cfg)
    assert m["skipped_steps"] == 1 and math.isfinite(m["val_loss"]) and m["val_loss"] < m["init_val_loss"]
    assert "step 2: non-finite loss, batch skipped" in capsys.readouterr().out


def test_another_model_shape_trains_afresh_beside_the_old_checkpoints(reference_run, tmp_path):
    import json
    import shutil

    ref_work, cfg, _ = reference_run
    work = tmp_path / "run"
    shutil.copytree(ref_work / "models", work / "models")
    cfg = dict(cfg, out_dir=str(work / "models/pretrain"))
    metrics = run_inprocess(work, {"size": "tiny", "depth": 2}, cfg)
    assert metrics["steps"] == cfg["max_steps"]
    (stale,) = (work / "models/pretrain").glob("checkpoints-stale-*")
    old = json.loads(next(stale.glob("step_*/config.json")).read_text())
    new = json.loads((work / "models/pretrain/hf/config.json").read_text())
    assert (old["hidden_size"], new["hidden_size"]) == (64, 128)
