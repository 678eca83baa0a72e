"""GPU resources from params.yaml reach Slurm: `meta.resources` is interpolated like the rest of
a stage, a stage asking for N GPUs is submitted with `--gres=gpu:N` and its per-GPU CPUs and
memory, and on the real one-node Slurm (4 GPUs as gres) the job is given those GPUs."""
from __future__ import annotations


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
        cpus_per_gpu: 1
        mem_mb_per_gpu: 150
        slurm_partition: ${resources.STAGE.partition}
        slurm_extra: ${resources.STAGE.slurm_extra}
"""
# the stage records what Slurm gave its job: the GPUs in its environment, and scontrol's record
RECORD = ("import json, os, subprocess; open('{out}', 'w').write(json.dumps(dict("
          "cuda=os.environ.get('CUDA_VISIBLE_DEVICES'), job=subprocess.run(['scontrol', 'show', 'job', '-o', "
          "os.environ.get('SLURM_JOB_ID', '0')], capture_output=True, text=True).stdout)))")
GPU_DVC_YAML = "stages:\n" + "".join(
    f"  {st}:\n    cmd: python -c \"{RECORD.format(out=st + '.txt')}\"\n    outs: [{st}.txt]\n"
    + RESOURCES.replace("STAGE", st) for st in ("train", "tune"))
GPU_PARAMS = {"resources": {"train": {"gpu": 2, "partition": "", "runtime": 7, "slurm_extra": "--nice=10"},
                            "tune": {"gpu": 0, "partition": "", "runtime": 5, "slurm_extra": ""}}}


def test_meta_resources_take_params_and_drop_empty_values(tmp_path):
    (tmp_path / "dvc.yaml").write_text(GPU_DVC_YAML)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(GPU_PARAMS))
    s = {r.name: r for r in rules_from_dvc(tmp_path / "dvc.yaml")}
    assert s["train"].resources == {"mem_mb": 100, "runtime": 7, "gpu": 2, "cpus_per_gpu": 1, "mem_mb_per_gpu": 150,
                                    "slurm_extra": "--nice=10"}
    # with GPUs the job's memory is per GPU (mem_mb is for a CPU run); cpus_per_gpu is the plugin's own
    assert s["train"].submit_resources == {"mem_mb": 300, "runtime": 7, "gres": "gpu:2", "cpus_per_gpu": 1,
                                           "slurm_extra": "--nice=10"}
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


@pytest.mark.slow   # about 30 s: two Snakemake jobs through the real Slurm
def test_slurm_gives_gpu_stages_their_gpus(tmp_path, slurm):
    import json

    from support.slurm import job

    if slurm.gpus < 2:
        pytest.skip("the cluster has fewer than 2 GPUs in its gres")
    repo = make_tiny_repo(tmp_path / "repo", tmp_path / "remote")
    (repo / "dvc.yaml").write_text(GPU_DVC_YAML)
    (repo / "params.yaml").write_text(yaml.safe_dump(GPU_PARAMS))
    git_commit(repo, "gpu stages")
    run(["snakemake", "--workflow-profile", "profiles/slurm", "--slurm-no-account",
         "--slurm-init-seconds-before-status-checks", "1", "--latency-wait", "5"], repo, env=env(), timeout=300)
    seen = {st: json.loads((repo / f"{st}.txt").read_text()) for st in ("train", "tune")}
    train = dict(tok.partition("=")[::2] for tok in seen["train"]["job"].split())
    assert seen["train"]["cuda"] == "0,1", seen["train"]   # Slurm gave the stage's step two GPUs
    assert train["TresPerNode"] == "gres:gpu:2" and train["CpusPerTres"] == "gres:gpu:1", train
    assert train["MinMemoryNode"] == "300M" and train["TimeLimit"] == "00:07:00" and train["Nice"] == "10"
    tune = dict(tok.partition("=")[::2] for tok in seen["tune"]["job"].split())
    assert seen["tune"]["cuda"] is None and "TresPerNode" not in tune, seen["tune"]
    assert tune["MinMemoryNode"] == "100M" and tune["TimeLimit"] == "00:05:00"
    assert job(train["JobId"])["JobState"] == "COMPLETED"
