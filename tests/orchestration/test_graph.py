"""The Snakefile's rules agree with dvc.yaml, and `snakemake -n` shows `dvc dag`'s graph.

`check_repo` (support.orchestration) is also run on the tiny repo before its SLURM run.

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

from support.orchestration import ROOT, check_repo, copy_orchestration, run


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
