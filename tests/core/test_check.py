"""`lmforge check`: the whole params.yaml validated up front, with did-you-mean and the YAML-number hint."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lmforge import check

REPO = Path(__file__).resolve().parents[2]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def test_the_committed_params_are_valid():
    assert check.check(PARAMS) == []
    assert set(PARAMS) <= set(check.SECTIONS) | set(check.SCALARS)


@pytest.mark.parametrize("name", sorted(check.SECTIONS))
def test_a_typo_in_any_section_is_caught_with_a_suggestion(name):
    fields = [f.name for f in dataclasses.fields(check.section_class(name)) if len(f.name) > 3]
    real = sorted(fields)[0]
    bad = {**PARAMS, name: {**(PARAMS.get(name) or {}), real + "x": 1}}
    errors = check.check(bad)
    assert len(errors) == 1 and f"'{real}x' (did you mean '{real}'?)" in errors[0] and f": {name}" in errors[0]


def test_an_unknown_section_and_a_bad_seed():
    errors = check.check({**PARAMS, "dpoo": {}, "seed": "x"})
    assert any("unknown section 'dpoo' (did you mean 'dpo'?)" in e for e in errors)
    assert any("seed: expected an integer" in e for e in errors) and len(errors) == 2


def test_a_yaml_number_without_a_dot_reads_as_dvc_reads_it_and_a_string_gets_the_hint(tmp_path):
    """DVC (YAML 1.2) reads and writes ``3e-3`` as a float (``dvc exp run -S`` leaves such
    floats); the params loader agrees. A loader that reads it as text still gets the hint."""
    from lmforge.config import read_yaml

    text = (REPO / "params.yaml").read_text().replace("  lr: 3.0e-3", "  lr: 3e-3", 1)
    (tmp_path / "params.yaml").write_text(text)
    params = read_yaml(tmp_path / "params.yaml")
    assert params["pretrain"]["lr"] == 0.003 and check.check(params) == []
    errors = check.check(yaml.safe_load(text))   # YAML 1.1: "3e-3" is a string
    assert errors == [e for e in errors if "pretrain.lr" in e] and len(errors) == 1
    assert "YAML reads 3e-3 as a string" in errors[0] and "0.003" in errors[0]


def test_the_command_fails_before_compute_with_one_line_per_problem(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text((REPO / "params.yaml").read_text().replace("\n  beta:", "\n  betta:", 1))
    p = subprocess.run([sys.executable, "-m", "lmforge.check", "--params", str(bad)], cwd=REPO,
                       capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [ln for ln in p.stderr.strip().splitlines() if "did you mean 'beta'" in ln]


def test_the_committed_schema_is_current_and_accepts_the_params():
    committed = json.loads((REPO / "params.schema.json").read_text())
    assert committed == json.loads(json.dumps(check.schema()))
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(PARAMS, committed)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**PARAMS, "dpo": {**PARAMS["dpo"], "betta": 0.1}}, committed)
