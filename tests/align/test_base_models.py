"""The real-model profile fails early and in one line: a missing base model folder names the
command that makes it, a bad override names its key, before DVC starts anything."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lmforge.align.base_models import KNOWN, make_command
from lmforge.align.common import check_model_dir
from lmforge.config import read_yaml

REPO = Path(__file__).resolve().parents[2]


def test_a_missing_known_base_folder_names_the_command_that_makes_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = KNOWN["smollm2-135m-instruct"].folder
    assert make_command(folder) == "python -m lmforge.align.base_models smollm2-135m-instruct"
    with pytest.raises(FileNotFoundError, match=rf"{folder} is not a Hugging Face model folder .*make it with "
                                                r"`python -m lmforge.align.base_models smollm2-135m-instruct`"):
        check_model_dir(folder, "sft.base_model")
    with pytest.raises(FileNotFoundError, match="build it first"):
        check_model_dir("models/elsewhere", "sft.base_model")


def _profile(tmp_path, overrides: dict):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    profile = {**yaml.safe_load((REPO / "params-smollm2.yaml").read_text()), **overrides}
    (tmp_path / "params-x.yaml").write_text(yaml.safe_dump(profile))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(REPO / "scripts/exp_profile.py"), "params-x.yaml", "--dry-run"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_the_profile_checks_its_base_folder_and_its_keys_before_dvc(tmp_path):
    r = _profile(tmp_path, {})
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "models/base/smollm2-135m-instruct" in r.stderr and "python -m lmforge.align.base_models" in r.stderr
    r = _profile(tmp_path, {"sft.eval.gate.max_short_share": 1.5})
    assert r.returncode == 2 and "gate.max_short_share must be in [0, 1]" in r.stderr and "Traceback" not in r.stderr
    base = tmp_path / "models/pretrain/hf"
    r = _profile(tmp_path, {"sft.base_model": "models/pretrain/hf"})   # the default base: no folder check
    assert r.returncode == 0 and r.stdout.startswith("dvc exp run -n x ") and "-S sft.lora.enabled=true" in r.stdout
    assert not base.exists()


def test_every_profile_override_applies_through_dvcs_own_parser(tmp_path):
    """What the profile prints is what DVC's Hydra parser accepts: a key params.yaml leaves to
    its dataclass default (``sft.train.max_length``) must be added (``+key``), not overridden."""
    from dvc.utils.hydra import apply_overrides

    r = _profile(tmp_path, {"sft.base_model": "models/pretrain/hf"})
    assert r.returncode == 0, r.stderr
    args = r.stdout.split()
    sets = [args[i + 1] for i, a in enumerate(args) if a == "-S"]
    assert "+sft.train.max_length=256" in sets
    apply_overrides(tmp_path / "params.yaml", sets)
    params = read_yaml(tmp_path / "params.yaml")   # as the stages read what DVC wrote (5e-05 a float)
    profile = yaml.safe_load((REPO / "params-smollm2.yaml").read_text())
    for dotted, value in {**profile, "sft.base_model": "models/pretrain/hf"}.items():
        node = params
        for part in dotted.split("."):
            node = node[part]
        assert node == value, dotted
