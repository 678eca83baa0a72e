"""Release: merged safetensors + tokenizer + generation config + a model card with lineage."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lmforge.config import ParamsError, build
from lmforge.release.build import release
from lmforge.release.config import ReleaseConfig

REPO = Path(__file__).resolve().parents[2]


def _out(path, md5, **kw):
    return {"path": path, "hash": "md5", "md5": md5, **kw}


LOCK = {"schema": "2.0", "stages": {
    "curate": {"cmd": "python -m stages.curate",
               "deps": [_out("data/sample/crawl", "c0ffee11.dir", size=5000, nfiles=3), _out("stages/curate.py", "5c1")],
               "outs": [_out("data/curated", "cu7a7ed0.dir", nfiles=2), _out("data/rejected", "4e1ec7ed.dir")]},
    "tokenizer": {"deps": [_out("data/curated", "cu7a7ed0.dir")], "outs": [_out("models/tokenizer", "70ke0.dir")]},
    "tokenize": {"deps": [_out("data/curated", "cu7a7ed0.dir"), _out("models/tokenizer", "70ke0.dir")],
                 "outs": [_out("data/tokens", "70ken5.dir")]},
    "pretrain": {"deps": [_out("data/tokens", "70ken5.dir")],
                 "outs": [_out("models/pretrain/hf", "b45e.dir"), _out("models/pretrain/checkpoints", "ckp7.dir")]},
    "harvest": {"deps": [_out("data/feedback_store", "f5702e.dir")], "outs": [_out("data/feedback", "feedbac.dir")]},
    "sft": {"deps": [_out("models/pretrain/hf/model.safetensors", "b45e0"), _out("data/feedback", "feedbac.dir")],
            "outs": [_out("models/sft", "5f7.dir")]},
    "reward": {"deps": [_out("models/sft", "5f7.dir")], "outs": [_out("models/reward", "4e3a4d.dir")]},
    "dpo": {"deps": [_out("models/sft", "5f7.dir"), _out("models/reward", "4e3a4d.dir")],
            "outs": [_out("models/dpo", "d90d90.dir", size=123, nfiles=9)]},
    "unrelated": {"deps": [_out("elsewhere", "0")], "outs": [_out("other", "07e4")]},
}}


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """Run `python -m stages.release` in a scratch repo with a dvc.lock and a git commit."""
    from lmforge.testing.tiny_model import build_tiny_model

    ws = tmp_path_factory.mktemp("release_ws")
    import pandas as pd

    build_tiny_model(ws / "models" / "dpo")
    (ws / "instr").mkdir()   # the release gate's held-out prompts; a random model: warn only
    pd.DataFrame({"prompt": ["What is Debian?", "Name a text editor.", "What does ls do?"]}).to_parquet(
        ws / "instr" / "val.parquet")
    check = {"data_dir": "instr", "prompts": 3, "max_new_tokens": 6, "gate": {"mode": "warn"}}
    (ws / "params.yaml").write_text(yaml.safe_dump({
        "seed": 1337, "data": {"workers": 2}, "dpo": {"beta": 0.125},
        "release": {"source": "models/dpo", "out_dir": "models/release", "name": "tiny-test", "check": check,
                    "repetition_penalty": 1.25}}))
    (ws / "dvc.lock").write_text(yaml.safe_dump(LOCK))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
    subprocess.run([*git, "add", "params.yaml", "dvc.lock"], cwd=ws, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=ws, check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ws, capture_output=True, text=True).stdout.strip()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "stages.release"], cwd=ws, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    replies = json.loads((ws / "metrics" / "release.json").read_text())["replies"]   # the release gate measured
    assert replies["replies"] == 3 and {"empty_share", "short_share", "gate_passed"} <= set(replies)
    return ws, sha


def test_release_folder_is_servable(released):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ws, _ = released
    out = ws / "models" / "release"
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "README.md",
            "lineage.json"} <= {p.name for p in out.iterdir()}
    tok = AutoTokenizer.from_pretrained(out)
    gen = json.loads((out / "generation_config.json").read_text())
    assert tok.convert_tokens_to_ids("<|end|>") in gen["eos_token_id"] and tok.eos_token_id in gen["eos_token_id"]
    assert gen["repetition_penalty"] == 1.25   # the served default: vLLM and lmforge serve read it from here
    assert "repetition penalty" in (out / "README.md").read_text()
    ids = torch.tensor([tok("Hello")["input_ids"]])
    a = AutoModelForCausalLM.from_pretrained(ws / "models" / "dpo")(ids).logits
    b = AutoModelForCausalLM.from_pretrained(out)(ids).logits
    assert torch.allclose(a, b)
    metrics = json.loads((ws / "metrics" / "release.json").read_text())
    assert metrics["lineage_complete"] and metrics["parameters"] > 0


def test_model_card_names_commit_params_and_lineage(released):
    ws, sha = released
    card = (ws / "models" / "release" / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "transformers" and front["pipeline_tag"] == "text-generation"
    assert sha in card and "# tiny-test" in card
    assert "beta: 0.125" in card and "workers: 2" in card  # params sections
    for md5 in ("d90d90.dir", "5f7.dir", "4e3a4d.dir", "b45e.dir", "70ken5.dir", "70ke0.dir", "cu7a7ed0.dir",
                "feedbac.dir", "f5702e.dir", "c0ffee11.dir"):  # every upstream artifact, back to the crawl
        assert md5 in card, md5
    assert "`data/sample/crawl`" in card and "07e4" not in card and "`unrelated`" not in card
    lineage = json.loads((ws / "models" / "release" / "lineage.json").read_text())
    assert lineage["git_commit"] == sha and lineage["stages"][0] == "dpo"
    assert {"dpo", "sft", "reward", "pretrain", "tokenize", "tokenizer", "curate", "harvest"} == set(lineage["stages"])
    assert lineage["files_sha256"]["model.safetensors"] in card


def test_model_card_front_matter_is_what_huggingface_hub_reads(released):
    from huggingface_hub import ModelCard, ModelCardData

    ws, _ = released
    card = ModelCard.load(ws / "models" / "release" / "README.md", ignore_metadata_errors=False)
    assert card.data.language == ["en"] and card.data.license == "apache-2.0"
    assert "data/sample/crawl" in card.data.datasets and not any(d.startswith("lmforge/") for d in card.data.datasets)
    assert card.data.base_model is None   # pretrained from scratch: the lineage names the checkpoint
    ModelCardData(**card.data.to_dict())  # the library's own checks of every field


def test_lora_adapter_is_merged(tiny_model, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    peft = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft.save_pretrained(tmp_path / "adapter")
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(tmp_path / "adapter")
    cfg = ReleaseConfig(source=str(tmp_path / "adapter"), out_dir=str(tmp_path / "release"),
                        lock_file=str(tmp_path / "missing.lock"))
    metrics = release(cfg, {})
    assert metrics["adapter_merged"] and not metrics["lineage_complete"]
    assert not (tmp_path / "release" / "adapter_config.json").exists()
    ids = torch.tensor([[5, 40, 41, 42]])
    with torch.no_grad():
        want = peft(ids).logits
        got = AutoModelForCausalLM.from_pretrained(tmp_path / "release")(ids).logits
        plain = AutoModelForCausalLM.from_pretrained(tiny_model)(ids).logits
    assert torch.allclose(want, got, atol=1e-4) and not torch.allclose(plain, got, atol=1e-4)
    assert "Lineage unknown" in (tmp_path / "release" / "README.md").read_text()


def test_release_refuses_bad_input(tmp_path):
    from lmforge.release.build import ReleaseError

    with pytest.raises(ReleaseError, match="not found"):
        release(ReleaseConfig(source=str(tmp_path / "nope"), out_dir=str(tmp_path / "r")), {})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReleaseError, match="no config.json"):
        release(ReleaseConfig(source=str(tmp_path / "empty"), out_dir=str(tmp_path / "r")), {})
    with pytest.raises(ParamsError, match="dtyp"):
        build(ReleaseConfig, {"dtyp": "float32"}, "release")
    with pytest.raises(ParamsError, match="release.repetition_penalty must be > 0"):
        build(ReleaseConfig, {"repetition_penalty": 0}, "release")
