"""GPU resources from params.yaml reach sbatch: `meta.resources` is interpolated like the
rest of a stage, and a stage asking for N GPUs is submitted with `--gres=gpu:N`."""
from __future__ import annotations

import re

import pytest
import yaml

from lmforge.orchestrate import DvcYamlError, rules_from_dvc

from support.orchestration import ROOT, dvc_view, env, git_commit, make_tiny_repo, run

RESOURCES = """\
    meta:
      resources:
        threads: 1
        mem_mb: 100
        runtime: ${resources.STAGE.runtime}
        gpu: ${resources.STAGE.gpu}
        slurm_partition: ${resources.STAGE.partition}
        slurm_extra: ${resources.STAGE.slurm_extra}
"""
GPU_DVC_YAML = "stages:\n" + "".join(
    f"  {st}:\n    cmd: python -c \"open('{st}.txt', 'w').write('ok')\"\n    outs: [{st}.txt]\n"
    + RESOURCES.replace("STAGE", st) for st in ("train", "tune"))
GPU_PARAMS = {"resources": {"train": {"gpu": 2, "partition": "", "runtime": 7, "slurm_extra": "--exclusive"},
                            "tune": {"gpu": 0, "partition": "", "runtime": 5, "slurm_extra": ""}}}


def test_meta_resources_take_params_and_drop_empty_values(tmp_path):
    (tmp_path / "dvc.yaml").write_text(GPU_DVC_YAML)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(GPU_PARAMS))
    s = {r.name: r for r in rules_from_dvc(tmp_path / "dvc.yaml")}
    assert s["train"].resources == {"mem_mb": 100, "runtime": 7, "gpu": 2, "slurm_extra": "--exclusive"}
    assert s["train"].submit_resources == {"mem_mb": 100, "runtime": 7, "gres": "gpu:2",
                                           "slurm_extra": "--exclusive"}
    assert s["tune"].submit_resources == {"mem_mb": 100, "runtime": 5}
    # DVC itself reads the same file (it interpolates meta too, and ignores it)
    run(["dvc", "init", "--no-scm", "-q"], tmp_path)
    assert set(dvc_view(tmp_path)) == {"train", "tune"}
    both = GPU_DVC_YAML.replace("        threads: 1\n", "        threads: 1\n        gres: gpu:1\n", 1)
    (tmp_path / "dvc.yaml").write_text(both)
    with pytest.raises(DvcYamlError, match="both gpu and gres"):
        rules_from_dvc(tmp_path / "dvc.yaml")[0].submit_resources


def test_project_training_stages_take_gpus_from_params(tmp_path):
    s = {r.name: r for r in rules_from_dvc(ROOT / "dvc.yaml")}
    params = yaml.safe_load((ROOT / "params.yaml").read_text())["resources"]
    for stage in ("pretrain", "sft", "reward", "dpo"):
        assert s[stage].resources["gpu"] == params[stage]["gpu"] == 0   # the tiny default: CPU only
        assert "gres" not in s[stage].submit_resources


def test_sbatch_gets_gres_for_gpu_stages(tmp_path, fake_slurm_bin):
    repo = make_tiny_repo(tmp_path / "repo", tmp_path / "remote")
    (repo / "dvc.yaml").write_text(GPU_DVC_YAML)
    (repo / "params.yaml").write_text(yaml.safe_dump(GPU_PARAMS))
    git_commit(repo, "gpu stages")
    state = tmp_path / "slurm"
    state.mkdir()
    run(["snakemake", "--workflow-profile", "profiles/slurm", "--slurm-no-account",
         "--slurm-init-seconds-before-status-checks", "1", "--latency-wait", "5"], repo,
        env=env([fake_slurm_bin], FAKE_SLURM_DIR=str(state), FAKE_SLURM_SACCT_WAIT="30"), timeout=300)
    argv = {re.search(r"--comment rule_(\w+)", a).group(1): a
            for a in (p.read_text() for p in (state / "jobs").glob("*.argv"))}
    assert set(argv) == {"train", "tune"}
    assert "--gres=gpu:2" in argv["train"] and " -t 7 " in argv["train"] and "--exclusive" in argv["train"]
    assert "--gres" not in argv["tune"] and "--gpus" not in argv["tune"]
    assert (repo / "train.txt").read_text() == "ok" and (repo / "tune.txt").read_text() == "ok"
