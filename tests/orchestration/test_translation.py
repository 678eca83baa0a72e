"""dvc.yaml → rule translation (lmforge.orchestrate), checked without Snakemake.

The reference for every stage is DVC's own reading of the same dvc.yaml
(`dvc.repo.Repo(...).index.stages`), for the project's dvc.yaml and the tiny one.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lmforge.orchestrate import DvcYamlError, edges, rules_from_dvc

from support.orchestration import ROOT, TINY_DVC_YAML, TINY_PARAMS, dvc_view, run


def write(d: Path, dvc_yaml: str | dict, params: str | dict = "{}\n") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "dvc.yaml").write_text(dvc_yaml if isinstance(dvc_yaml, str) else yaml.safe_dump(dvc_yaml))
    (d / "params.yaml").write_text(params if isinstance(params, str) else yaml.safe_dump(params))
    return d / "dvc.yaml"


def by_name(specs):
    return {s.name: s for s in specs}


def test_tiny_translation(tmp_path):
    s = by_name(rules_from_dvc(write(tmp_path, TINY_DVC_YAML, TINY_PARAMS)))
    assert list(s) == ["prepare", "count", "words"]
    assert s["prepare"].outputs == ("data/raw",) and s["prepare"].output_dirs == {"data/raw"}
    assert (s["prepare"].threads, s["prepare"].resources) == (1, {"mem_mb": 100, "runtime": 5})
    assert s["count"].cmd == "python src/count.py --label docs"  # ${count.label} interpolated
    assert s["count"].inputs == ("src/count.py", "data/raw")
    assert set(s["count"].outputs) == {"metrics/count.json", "metrics/count.csv"} and not s["count"].output_dirs
    assert s["count"].params == {"params.yaml:count.scale": 2}  # only the listed key
    assert s["words"].shell == "python src/words.py && echo words-done"
    assert json.loads(s["words"].params_json) == {"params.yaml:words": {"upper": False}}
    assert edges(list(s.values())) == {("prepare", "count")}


def test_links_persist_wdir_and_stamp(tmp_path):
    doc = {"stages": {
        "train": {"cmd": "python t.py", "deps": ["t.py"],
                  "outs": [{"ckpt": {"persist": True}}, "model"],
                  "meta": {"resources": {"threads": 2, "gpu": 1, "slurm_partition": "gpu"}}},
        "evalq": {"cmd": "python e.py", "deps": ["model/config.json", "ckpt"], "wdir": "."},
        "sub": {"cmd": "python s.py", "wdir": "sub", "deps": ["../model"], "outs": ["out.json"]},
    }}
    s = by_name(rules_from_dvc(write(tmp_path, doc)))
    assert s["train"].outputs == ("model",)  # persist out left out, Snakemake would delete it
    assert (s["train"].threads, s["train"].resources) == (2, {"gpu": 1, "slurm_partition": "gpu"})
    # a file inside another stage's folder output depends on that output; a persist
    # out links through the stage's other outputs
    assert s["evalq"].inputs == ("model",)
    assert s["evalq"].stamp == ".snakemake/dvc-stages/evalq.done"
    assert s["evalq"].shell.endswith("mkdir -p .snakemake/dvc-stages && touch .snakemake/dvc-stages/evalq.done")
    assert s["sub"].cmd == "cd sub && python s.py" and s["sub"].inputs == ("model",)
    assert s["sub"].outputs == ("sub/out.json",)
    assert edges(list(s.values())) == {("train", "evalq"), ("train", "sub")}


def test_params_change_only_changes_that_stage(tmp_path):
    p = write(tmp_path, TINY_DVC_YAML, TINY_PARAMS)
    before = by_name(rules_from_dvc(p))
    (tmp_path / "params.yaml").write_text(TINY_PARAMS.replace("scale: 2", "scale: 7"))
    after = by_name(rules_from_dvc(p))
    changed = {n for n in before if before[n].params_json != after[n].params_json or before[n].shell != after[n].shell}
    assert changed == {"count"}


@pytest.mark.parametrize("doc, params, match", [
    ({"stages": {"a": {"foreach": [1, 2], "do": {"cmd": "echo ${item}"}}}}, {}, "foreach/matrix"),
    ({"stages": {"a": {"cmd": "echo", "params": ["nope.key"]}}}, {"x": 1}, "missing key 'nope.key'"),
    ({"stages": {"a": {"cmd": "echo ${x}"}}}, {"x": {"y": 1}}, "only scalars"),
    ({"stages": {"bad-name": {"cmd": "echo"}}}, {}, "Python identifier"),
    ({"stages": {"a": {"cmd": "echo", "meta": {"resources": {"threads": 0}}}}}, {}, "threads"),
    ({"stages": {"a": {"cmd": "echo", "params": [{"other.yaml": ["k"]}]}}}, {}, "other.yaml"),
])
def test_bad_dvc_yaml_names_the_problem(tmp_path, doc, params, match):
    with pytest.raises(DvcYamlError, match=match):
        rules_from_dvc(write(tmp_path, doc, params))


def check_against_dvc(root: Path) -> None:
    specs = by_name(rules_from_dvc(root / "dvc.yaml"))
    dvc = dvc_view(root)
    assert set(specs) == set(dvc)
    for name, d in dvc.items():
        s = specs[name]
        cmd = " && ".join(d["cmd"]) if isinstance(d["cmd"], list) else d["cmd"]
        assert s.cmd == (cmd if d["wdir"] == "." else f"cd {d['wdir']} && {cmd}"), name
        assert set(s.outputs) == set(d["outs"]) or (not d["outs"] and s.stamp), name
        assert sorted(s.params) == d["params"], name
        for dep in d["deps"]:  # each DVC dep is an input, or lies in/above one
            assert any(dep == i or dep.startswith(i + "/") or i.startswith(dep + "/") for i in s.inputs), (name, dep)


def test_tiny_agrees_with_dvc(tmp_path):
    write(tmp_path, TINY_DVC_YAML, TINY_PARAMS)
    run(["dvc", "init", "--no-scm", "-q"], tmp_path)
    check_against_dvc(tmp_path)


def test_project_dvc_yaml_agrees_with_dvc():
    check_against_dvc(ROOT)
