"""Deploy files as a real cluster meets them. The SLURM serving scripts run with stand-in `srun`
and `apptainer` that record their arguments: the GPUs Slurm assigned reach the container, each
job gets its own port, the image is never pulled inside the GPU job, and the pyxis hint names a
real image. The Kubernetes files leave the replica count to the autoscaler and say which volume
class several pods on several nodes need; TGI's shard count is explicit; vLLM's flags are the
pinned version's."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from lmforge.config import build
from lmforge.release.deploy import write_deploy_files
from lmforge.release.manifests import enroot_image
from lmforge.serve.config import DeployConfig, ServeConfig


@pytest.fixture(scope="module")
def scripts(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("deploy")
    files = write_deploy_files(build(DeployConfig, {"out_dir": str(out), "engine": "both"}, "deploy"), ServeConfig())
    return {"tgi": files["tgi_slurm"], "vllm": files["vllm_slurm"]}


def _run(script: Path, tmp_path: Path, sif: bool, **env: str) -> tuple[subprocess.CompletedProcess, str]:
    bin_ = tmp_path / "bin"
    bin_.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "argv.log"
    for tool in ("srun", "apptainer"):
        (bin_ / tool).write_text(f'#!/bin/bash\nprintf "%s " {tool} "$@" >> {log}\necho >> {log}\n'
                                 + ('exec "$@"\n' if tool == "srun" else ""))
        (bin_ / tool).chmod(0o755)
    model = tmp_path / "release"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    image = tmp_path / "image.sif"
    if sif:
        image.write_text("")
    environ = {"PATH": f"{bin_}:/usr/bin:/bin", "HOME": str(tmp_path), "MODEL_DIR": str(model),
               "TGI_SIF": str(image), "VLLM_SIF": str(image), **env}
    p = subprocess.run(["bash", str(script)], env=environ, capture_output=True, text=True, timeout=60)
    return p, log.read_text() if log.exists() else ""


@pytest.mark.parametrize("engine", ["tgi", "vllm"])
def test_gpus_and_a_port_of_its_own_reach_the_container(scripts, tmp_path, engine):
    ports = []
    for job in ("1234", "1235"):
        p, argv = _run(scripts[engine], tmp_path / job, True, SLURM_JOB_ID=job, CUDA_VISIBLE_DEVICES="2,3")
        assert p.returncode == 0, p.stderr
        assert "--cleanenv" in argv and "--env CUDA_VISIBLE_DEVICES=2,3" in argv, argv
        ports.append(p.stdout.rsplit(":", 1)[1].strip())
    assert ports[0] != ports[1]


@pytest.mark.parametrize("engine", ["tgi", "vllm"])
def test_no_image_pull_inside_the_gpu_job(scripts, tmp_path, engine):
    p, argv = _run(scripts[engine], tmp_path, False, SLURM_JOB_ID="7")
    assert p.returncode == 1 and "apptainer pull" in p.stderr and "pull" not in argv


def test_pyxis_image_names():
    assert enroot_image("vllm/vllm-openai", "v0.34.0") == "vllm/vllm-openai:v0.34.0"
    assert (enroot_image("ghcr.io/huggingface/text-generation-inference", "3.3.7")
            == "ghcr.io#huggingface/text-generation-inference:3.3.7")


def test_tgi_shard_count_is_explicit_and_the_vllm_flags_are_the_pinned_version(scripts):
    import json

    import yaml

    from lmforge.config import load_params, section

    assert "--num-shard 1" in scripts["tgi"].read_text()
    kube = list(yaml.safe_load_all((scripts["tgi"].parent / "kubernetes.yaml").read_text()))
    env = {e["name"]: e["value"] for e in kube[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["NUM_SHARD"] == str(section(DeployConfig, "deploy", load_params()).kubernetes.gpus)
    flags = json.loads((Path(__file__).parent / "vllm_cli_flags.json").read_text())
    pinned = section(DeployConfig, "deploy", load_params()).vllm.tag
    assert f"v{flags['vllm_version']}" == pinned and "--swap-space" not in flags["flags"]


def test_kubernetes_leaves_replicas_to_the_autoscaler_and_names_the_volume_class(scripts):
    import yaml

    for name in ("kubernetes.yaml", "vllm-kubernetes.yaml"):
        text = (scripts["tgi"].parent / name).read_text()
        deployment, _, hpa = yaml.safe_load_all(text)
        assert "replicas" not in deployment["spec"] and hpa["spec"]["minReplicas"] >= 1
        assert "ReadOnlyMany" in text and "Multi-Attach" in text


def test_dashboard_charts_vllm_names_that_vllm_defines_and_no_home_made_server_names(tmp_path):
    import json
    import re

    from lmforge.release.dashboards import grafana_dashboard, queried_metrics

    d = build(DeployConfig, {"out_dir": str(tmp_path), "engine": "both"}, "deploy")
    names = queried_metrics(grafana_dashboard(d))
    vllm = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in names if n.startswith("vllm:")}
    defined = set(json.loads((Path(__file__).parent / "vllm_cli_flags.json").read_text())["metrics"])
    assert {"vllm:num_requests_waiting", "vllm:e2e_request_latency_seconds"} <= vllm and vllm <= defined, vllm - defined
    assert {n for n in names if n.startswith("lmforge_")} == {n for n in names if n.startswith("lmforge_gateway_")}
    tgi_only = build(DeployConfig, {"out_dir": str(tmp_path), "engine": "tgi"}, "deploy")
    assert not any(n.startswith("vllm:") for n in queried_metrics(grafana_dashboard(tgi_only)))
