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
from lmforge.release.config import DeployConfig, ServeConfig


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
        p, argv = _run(scripts[engine], tmp_path / job, True, SLURM_JOB_ID=job, CUDA_VISIBLE_DEVICES="2,3",
                       TMPDIR=str(tmp_path / job))
        assert p.returncode == 0, p.stderr
        assert "--cleanenv" in argv and "--env CUDA_VISIBLE_DEVICES=2,3" in argv, argv
        if engine == "tgi":
            assert f"--shard-uds-path {tmp_path / job}/lmforge-tgi-{job}" in argv, argv
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


def _relabel(rules: list[dict], labels: dict[str, str]) -> dict[str, str] | None:
    """Prometheus's relabelling (keep / replace, the only actions the scrape config uses)."""
    import re

    labels = dict(labels)
    for r in rules:
        value = r.get("separator", ";").join(labels.get(s, "") for s in r.get("source_labels", []))
        m = re.fullmatch(r.get("regex", "(.*)"), value)
        if r.get("action", "replace") == "keep":
            if not m:
                return None
        elif m:
            labels[r["target_label"]] = m.expand(r.get("replacement", "$1").replace("$", "\\"))
    return labels


@pytest.mark.parametrize("engine, hpa_file", [("tgi", "kubernetes.yaml"), ("vllm", "vllm-kubernetes.yaml")])
def test_autoscaler_chain_scrape_adapter_hpa(tmp_path, engine, hpa_file):
    """Render what each piece sees: a pod of the Deployment, found by the scrape job, gives series
    whose labels the adapter rule matches, and the adapter's metric is the one the HPA asks for."""
    import re

    import yaml

    from lmforge.release import deploy, deploy_vllm

    d = build(DeployConfig, {"out_dir": str(tmp_path), "engine": "both"}, "deploy")
    files = write_deploy_files(d, ServeConfig())
    deployment, _, hpa = yaml.safe_load_all(files[f"{engine}_kubernetes"].read_text())
    prom = yaml.safe_load(files["prometheus"].read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == f"{d.name}-{engine}")
    assert job["kubernetes_sd_configs"][0]["role"] == "pod"

    tmpl = deployment["spec"]["template"]["metadata"]
    san = lambda k: re.sub(r"[^a-zA-Z0-9_]", "_", k)  # noqa: E731  (Prometheus's meta label names)
    pod = {"__address__": "10.1.2.3:80", "__meta_kubernetes_namespace": deployment["metadata"]["namespace"],
           "__meta_kubernetes_pod_name": f"{deployment['metadata']['name']}-7d9f-x2k4q",
           **{f"__meta_kubernetes_pod_label_{san(k)}": v for k, v in tmpl["labels"].items()},
           **{f"__meta_kubernetes_pod_annotation_{san(k)}": v for k, v in tmpl["annotations"].items()}}
    target = _relabel(job["relabel_configs"], pod)
    assert target is not None and target["__metrics_path__"] == "/metrics"
    series = {k: v for k, v in target.items() if not k.startswith("__")}
    assert series["namespace"] == deployment["metadata"]["namespace"] and series["pod"] == pod["__meta_kubernetes_pod_name"]
    other = _relabel(job["relabel_configs"], {**pod, "__meta_kubernetes_pod_label_app_kubernetes_io_name": "x"})
    assert other is None   # pods of other apps are not scraped

    rule = (deploy if engine == "tgi" else deploy_vllm).ADAPTER_RULE
    name, matchers = re.fullmatch(r"([^{]+)\{(.*)\}", rule["seriesQuery"]).groups()
    for label in re.findall(r'(\w+)!=""', matchers):
        assert series.get(label), label
    assert set(rule["resources"]["overrides"]) <= set(series)
    exposed = re.sub(rule["name"]["matches"], rule["name"]["as"].replace("${1}", r"\1"), name)
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == exposed
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
