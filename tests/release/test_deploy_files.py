"""TGI deployment files: they parse, and they carry the serve limits and the release mount."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from lmforge.config import ParamsError, build, load_params, section
from lmforge.serve.config import DeployConfig, ServeConfig
from lmforge.release.deploy import write_deploy_files

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = tmp_path_factory.mktemp("deploy")
    d = build(DeployConfig, {"out_dir": str(out), "tag": "3.3.5", "kubernetes": {"max_replicas": 6,
                                                                                  "target_queue_size": 3}}, "deploy")
    s = ServeConfig(max_input_tokens=100, max_total_tokens=300, max_concurrent_requests=17, max_batch_size=5)
    return write_deploy_files(d, s)


def test_shell_scripts_parse(files):
    for key in ("run", "slurm"):
        r = subprocess.run(["bash", "-n", str(files[key])], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert files[key].stat().st_mode & 0o111


def test_container_command(files):
    text = files["run"].read_text()
    assert "ghcr.io/huggingface/text-generation-inference:3.3.5" in text
    for flag in ("-e MODEL_ID=/data/release", "-e MAX_INPUT_TOKENS=100", "-e MAX_TOTAL_TOKENS=300",
                 "-e MAX_CONCURRENT_REQUESTS=17", "-e MAX_BATCH_SIZE=5", "-e PORT=80", "-p 8080:80",
                 ":/data/release:ro"):
        assert flag in text, flag


def test_kubernetes_manifests(files):
    docs = list(yaml.safe_load_all(files["kubernetes"].read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert c["image"].endswith(":3.3.5") and env["MODEL_ID"] == "/data/release"
    assert env["MAX_INPUT_TOKENS"] == "100" and env["MAX_TOTAL_TOKENS"] == "300"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/health" and c[probe]["httpGet"]["port"] == "http"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/data/release", "/dev/shm"}
    assert kinds["Deployment"]["spec"]["selector"]["matchLabels"] == kinds["Service"]["spec"]["selector"]
    hpa = kinds["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["maxReplicas"] == 6
    assert hpa["spec"]["scaleTargetRef"]["name"] == kinds["Deployment"]["metadata"]["name"]
    metric = hpa["spec"]["metrics"][0]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "tgi_queue_size"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "3"}


def test_slurm_script(files):
    text = files["slurm"].read_text()
    assert "#SBATCH --gpus=1" in text and "#SBATCH --partition=gpu" in text
    assert "apptainer exec --nv" in text and "docker://ghcr.io/huggingface/text-generation-inference:3.3.5" in text
    for flag in ("--model-id /data/release", "--max-input-tokens 100", "--max-total-tokens 300",
                 "--max-concurrent-requests 17"):
        assert flag in text


def test_repo_params_are_valid_and_checked(tiny_model):
    params = load_params(REPO / "params.yaml")
    serve = section(ServeConfig, "serve", params).for_model(str(tiny_model))
    assert serve.max_input_tokens < serve.max_total_tokens == 256  # the tiny model's context
    assert section(DeployConfig, "deploy", params).smoke.concurrency
    with pytest.raises(ParamsError, match="tag"):
        build(DeployConfig, {"tag": "ghcr.io/x:1"}, "deploy")
    with pytest.raises(ParamsError, match="max_input_tokens"):
        build(ServeConfig, {"max_input_tokens": 300, "max_total_tokens": 256}, "serve")
