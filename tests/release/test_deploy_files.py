"""Deployment files for TGI and vLLM: they parse, carry the serve limits and the release mount,
use only flags the engine accepts, and `deploy.engine` chooses which are written."""
from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from lmforge.config import ParamsError, build, load_params, section
from lmforge.release.config import DeployConfig, ServeConfig
from lmforge.release.deploy import write_deploy_files

REPO = Path(__file__).resolve().parents[2]
VLLM_FLAGS = json.loads((Path(__file__).parent / "vllm_cli_flags.json").read_text())
SERVE = ServeConfig(max_input_tokens=100, max_total_tokens=300, max_concurrent_requests=17, max_batch_size=5)
TGI_NAMES = {"tgi-run.sh", "kubernetes.yaml", "tgi.sbatch"}
VLLM_NAMES = {"vllm-run.sh", "vllm-kubernetes.yaml", "vllm.sbatch"}
SHARED_NAMES = {"prometheus.yml", "grafana-dashboard.json"}


def deploy_config(out, **extra) -> DeployConfig:
    return build(DeployConfig, {"out_dir": str(out), "tag": "3.3.5",
                                "kubernetes": {"max_replicas": 6, "target_queue_size": 3, "gpus": 2},
                                "vllm": {"tag": "v0.22.0"}, **extra}, "deploy")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_deploy_files(deploy_config(tmp_path_factory.mktemp("deploy"), engine="both"), SERVE)


def test_shell_scripts_parse(files):
    for key in ("tgi_run", "tgi_slurm", "vllm_run", "vllm_slurm"):
        r = subprocess.run(["bash", "-n", str(files[key])], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert files[key].stat().st_mode & 0o111


def test_tgi_container_command(files):
    text = files["tgi_run"].read_text()
    assert "ghcr.io/huggingface/text-generation-inference:3.3.5" in text
    for flag in ("-e MODEL_ID=/data/release", "-e MAX_INPUT_TOKENS=100", "-e MAX_TOTAL_TOKENS=300",
                 "-e MAX_CONCURRENT_REQUESTS=17", "-e MAX_BATCH_SIZE=5", "-e PORT=80", "-p 8081:80",
                 ":/data/release:ro", "-e DTYPE=bfloat16"):
        assert flag in text, flag
    assert "TGI has no float32" in text


def test_tgi_precision_is_explicit_and_one_tgi_accepts(tmp_path):
    """TGI's --dtype takes float16 or bfloat16 only: the files always pass one (unset, TGI picks
    float16 for a float32 checkpoint), and asking TGI for float32 fails at params."""
    files = write_deploy_files(deploy_config(tmp_path, engine="tgi", tgi_dtype="float16"), SERVE)
    assert "-e DTYPE=float16" in files["tgi_run"].read_text() and "--dtype float16" in files["tgi_slurm"].read_text()
    env = {e["name"]: e["value"] for e in workload(files["tgi_kubernetes"])["container"]["env"]}
    assert env["DTYPE"] == "float16"
    with pytest.raises(ParamsError, match=r"deploy\.tgi_dtype: expected one of \['bfloat16', 'float16'\]"):
        deploy_config(tmp_path, tgi_dtype="float32")


def workload(path: Path) -> dict:
    docs = list(yaml.safe_load_all(path.read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Deployment", "Service", "HorizontalPodAutoscaler"} and len(docs) == 3
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/health" and c[probe]["httpGet"]["port"] == "http"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 2
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert set(mounts) == {"/data/release", "/dev/shm"} and mounts["/data/release"]["readOnly"]
    claim = {v["name"]: v for v in pod["volumes"]}[mounts["/data/release"]["name"]]
    assert claim["persistentVolumeClaim"]["claimName"] == "lmforge-models"
    assert kinds["Deployment"]["spec"]["selector"]["matchLabels"] == kinds["Service"]["spec"]["selector"]
    hpa = kinds["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["maxReplicas"] == 6
    assert hpa["spec"]["scaleTargetRef"]["name"] == kinds["Deployment"]["metadata"]["name"]
    metric = hpa["spec"]["metrics"][0]
    assert metric["type"] == "Pods" and metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "3"}
    return {"container": c, "metric": metric["pods"]["metric"]["name"], "name": kinds["Deployment"]["metadata"]["name"]}


def test_tgi_kubernetes(files):
    w = workload(files["tgi_kubernetes"])
    env = {e["name"]: e["value"] for e in w["container"]["env"]}
    assert w["container"]["image"].endswith(":3.3.5") and env["MODEL_ID"] == "/data/release"
    assert env["MAX_INPUT_TOKENS"] == "100" and env["MAX_TOTAL_TOKENS"] == "300" and env["DTYPE"] == "bfloat16"
    assert w["metric"] == "tgi_queue_size" and w["name"] == "lmforge-tgi"


def test_tgi_slurm_script(files):
    text = files["tgi_slurm"].read_text()
    assert "#SBATCH --gpus=1" in text and "#SBATCH --partition=gpu" in text
    assert "apptainer exec --nv" in text and "docker://ghcr.io/huggingface/text-generation-inference:3.3.5" in text
    for flag in ("--model-id /data/release", "--max-input-tokens 100", "--max-total-tokens 300",
                 "--max-concurrent-requests 17", "--dtype bfloat16"):
        assert flag in text


def vllm_args(args: list[str]) -> dict[str, str]:
    """`<model> --flag value ...` -> {"model": ..., "--flag": value}; every flag must be one vLLM accepts."""
    model, rest = args[0], args[1:]
    assert not model.startswith("-") and len(rest) % 2 == 0, args
    pairs = dict(zip(rest[::2], rest[1::2]))
    unknown = set(pairs) - set(VLLM_FLAGS["flags"])
    assert not unknown, f"flags not in vLLM's CLI reference: {unknown}"
    return {"model": model, **pairs}


def after(text: str, marker: str) -> list[str]:
    """The shell words after `marker` up to the end of that (continued) command."""
    command = text[text.index(marker) + len(marker):].split("\n\n")[0]
    return shlex.split(command.replace("\\\n", " ").splitlines()[0])


def test_vllm_container_command(files):
    text = files["vllm_run"].read_text()
    assert 'IMAGE="vllm/vllm-openai:v0.22.0"' in text and "-p 8000:80" in text and ":/data/release:ro" in text
    a = vllm_args(after(text, '"$IMAGE"'))
    assert a == {"model": "/data/release", "--served-model-name": "lmforge", "--host": "0.0.0.0", "--port": "80",
                 "--max-model-len": "300", "--max-num-seqs": "5", "--dtype": "float32",
                 "--gpu-memory-utilization": "0.9", "--tensor-parallel-size": "1",
                 "--generation-config": "auto"}   # the release's generation_config.json sets request defaults


def test_vllm_kubernetes(files):
    text = files["vllm_kubernetes"].read_text()
    w = workload(files["vllm_kubernetes"])
    c = w["container"]
    assert c["image"] == "vllm/vllm-openai:v0.22.0" and "command" not in c  # the image's entrypoint is vllm serve
    a = vllm_args(c["args"])
    assert a["model"] == "/data/release" and a["--max-model-len"] == "300" and a["--max-num-seqs"] == "5"
    assert a["--port"] == "80" and a["--tensor-parallel-size"] == "2"
    assert w["metric"] == "vllm_num_requests_waiting" and w["name"] == "lmforge-vllm"
    assert "vllm:num_requests_waiting" in text  # the adapter rule that renames the gauge is in the header


def test_vllm_slurm_script(files):
    text = files["vllm_slurm"].read_text()
    assert "#SBATCH --gpus=1" in text and "#SBATCH --job-name=lmforge-vllm" in text
    assert "docker://vllm/vllm-openai:v0.22.0" in text and "apptainer exec --nv" in text
    a = vllm_args(after(text, '"$SIF" vllm serve'))
    assert a["model"] == "/data/release" and a["--port"] == "$PORT" and a["--max-model-len"] == "300"


def test_engine_switch_writes_only_the_chosen_files(tmp_path):
    names = lambda: {p.name for p in tmp_path.iterdir()}  # noqa: E731
    write_deploy_files(deploy_config(tmp_path, engine="both"), SERVE)
    assert names() == TGI_NAMES | VLLM_NAMES | SHARED_NAMES
    write_deploy_files(deploy_config(tmp_path, engine="vllm"), SERVE)
    assert names() == VLLM_NAMES | SHARED_NAMES
    scrape = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    assert [j["job_name"] for j in scrape["scrape_configs"]] == ["lmforge-vllm", "lmforge-gateway"]
    write_deploy_files(deploy_config(tmp_path, engine="tgi"), SERVE)
    assert names() == TGI_NAMES | SHARED_NAMES


def test_repo_params_are_valid_and_checked(tiny_model):
    params = load_params(REPO / "params.yaml")
    serve = section(ServeConfig, "serve", params).for_model(str(tiny_model))
    assert serve.max_input_tokens < serve.max_total_tokens == 256  # the tiny model's context
    assert section(DeployConfig, "deploy", params).smoke.concurrency
    with pytest.raises(ParamsError, match="tag"):
        build(DeployConfig, {"tag": "ghcr.io/x:1"}, "deploy")
    with pytest.raises(ParamsError, match="engine"):
        build(DeployConfig, {"engine": "sglang"}, "deploy")
    with pytest.raises(ParamsError, match="gpu_memory_utilization"):
        build(DeployConfig, {"vllm": {"gpu_memory_utilization": 1.5}}, "deploy")
    with pytest.raises(ParamsError, match="max_input_tokens"):
        build(ServeConfig, {"max_input_tokens": 300, "max_total_tokens": 256}, "serve")
