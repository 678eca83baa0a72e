"""The Snakefile's rules agree with dvc.yaml, and `snakemake -n` shows `dvc dag`'s graph.

`check_repo` is also run on the tiny repo (test_slurm_dvc.py), before its SLURM run.

Both tools run for real: `snakemake -n -p --forceall` and `snakemake --dag` on
the project's Snakefile, `dvc dag --dot` and DVC's own stage list on dvc.yaml.
The project check runs in a scratch copy holding dvc.yaml, params.yaml, the
Snakefile and placeholders for the source inputs, so it works on a fresh clone
whatever has been built (and never touches the working tree's DVC lock).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lmforge.orchestrate import is_dir_path, rules_from_dvc

from .conftest import ROOT, copy_orchestration, dot_edges, dvc_view, parse_dry_run, run


def scratch_copy(src_root: Path, dst: Path) -> Path:
    """dvc.yaml + params files + Snakefile, and a placeholder for every source input."""
    dst.mkdir(parents=True)
    copy_orchestration(dst)
    specs = rules_from_dvc(src_root / "dvc.yaml")
    files = {"dvc.yaml", "params.yaml"} | {k.split(":", 1)[0] for s in specs for k in s.params}
    for f in files:
        if (src_root / f).exists():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src_root / f, dst / f)
    produced = {o for s in specs for o in s.outputs}
    for s in specs:
        for i in s.inputs:
            if i in produced or (dst / i).exists():
                continue
            if is_dir_path(i, src_root):
                (dst / i).mkdir(parents=True, exist_ok=True)
            else:
                (dst / i).parent.mkdir(parents=True, exist_ok=True)
                (dst / i).touch()
    run(["dvc", "init", "--no-scm", "-q"], dst)
    return dst


def check_repo(repo: Path) -> None:
    specs = {s.name: s for s in rules_from_dvc(repo / "dvc.yaml")}
    dvc = dvc_view(repo)

    jobs = parse_dry_run(run(["snakemake", "-n", "-p", "--forceall"], repo).stdout)
    jobs.pop("all", None)
    assert set(jobs) == set(dvc)
    for name, d in dvc.items():
        job, spec = jobs[name], specs[name]
        cmd = " && ".join(d["cmd"]) if isinstance(d["cmd"], list) else d["cmd"]
        cmd = cmd if d["wdir"] == "." else f"cd {d['wdir']} && {cmd}"
        assert job["shell"] == (cmd if spec.stamp is None else spec.shell), name
        assert set(job["output"]) == (set(d["outs"]) or {spec.stamp}), name
        assert set(job["input"]) == set(spec.inputs), name
        for dep in d["deps"]:
            assert any(dep == i or dep.startswith(i + "/") or i.startswith(dep + "/") for i in job["input"]), (name, dep)

    sm_edges = dot_edges(run(["snakemake", "--dag", "--forceall"], repo).stdout, labels_from_ids=True)
    sm_edges = {e for e in sm_edges if "all" not in e}
    dvc_edges = dot_edges(run(["dvc", "dag", "--dot"], repo).stdout, labels_from_ids=False)
    # `dvc add`-tracked data shows up in dvc dag as a `.dvc` node: a source, no rule
    dvc_edges = {(a, b) for a, b in dvc_edges if not a.endswith(".dvc")}
    assert sm_edges == dvc_edges


def test_project_snakefile_matches_dvc(tmp_path):
    if not rules_from_dvc(ROOT / "dvc.yaml"):
        pytest.skip("dvc.yaml has no stages yet")
    check_repo(scratch_copy(ROOT, tmp_path / "project"))


# params keys that name a stage's inputs or outputs (the rest are knobs)
_PATH_KEY = ("base_model", "sft_model", "reward_model", "source", "model_dir", "data_dir", "feedback_dir",
             "pairs_dir", "out_dir", "out", "path", "instructions", "store", "rejection_out")


def test_paths_chosen_in_params_are_the_stage_deps_and_outs():
    """Every path a stage reads from its params section reaches dvc.yaml by ${...}, so
    pointing a stage elsewhere (your own base model, say) changes what DVC and
    Snakemake track, instead of leaving a stale literal behind."""
    import yaml

    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    missing = []
    for name, stage in dvc.items():
        text = yaml.safe_dump({k: stage.get(k) for k in ("deps", "outs", "metrics", "plots")})
        for entry in stage.get("params") or []:
            section = entry if isinstance(entry, str) else None
            if section not in params or not isinstance(params[section], dict):
                continue
            for key, val in params[section].items():
                if key in _PATH_KEY and isinstance(val, str) and f"${{{section}.{key}}}" not in text:
                    missing.append(f"{name}: {section}.{key}")
    assert missing == []


def test_sft_depends_on_the_model_it_starts_from(tmp_path):
    """With sft.base_model pointing at an outside model, sft no longer waits for pretraining."""
    import yaml

    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["sft"]["base_model"] = "models/my-own-llama"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    sft = {s.name: s for s in rules_from_dvc(tmp_path / "dvc.yaml")}["sft"]
    assert "models/my-own-llama" in sft.inputs
    assert not any(i.startswith("models/pretrain") for i in sft.inputs)
    default = {s.name: s for s in rules_from_dvc(ROOT / "dvc.yaml")}["sft"]
    assert "models/pretrain/hf" in default.inputs
