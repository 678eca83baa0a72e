"""Deployment files for the official TGI and vLLM images, generated from params.

`write_deploy_files(deploy, serve)` writes into `deploy/`, for the engines that
`deploy.engine` names (`tgi`, `vllm` or `both`; the vLLM files come from
``lmforge.release.deploy_vllm``: `vllm-run.sh`, `vllm-kubernetes.yaml`, `vllm.sbatch`),
and removes the files of an engine that is no longer chosen, so the folder, which is
the stage's one declared output, holds exactly what params say. For TGI:
- `tgi-run.sh` — `docker run` (or podman) of `ghcr.io/huggingface/text-generation-inference:<tag>`
  with the release folder mounted read-only as MODEL_ID and TGI's limits as env vars;
- `kubernetes.yaml` — Deployment (GPU, /health startup/readiness/liveness probes, the
  release on a PVC, /dev/shm), Service, and a HorizontalPodAutoscaler on TGI's own
  Prometheus metric `tgi_queue_size` (a Pods metric; needs prometheus-adapter or an
  equivalent custom-metrics API);
- `tgi.sbatch` — a SLURM job running the same image through apptainer;
- `prometheus.yml` and `grafana-dashboard.json` — scraping and charting the server's
  `tgi_*` and the gateway's `lmforge_gateway_*` metrics (``lmforge.release.dashboards``).
All carry the same limits as the local server (`serve` params), so a request accepted
locally is accepted on the cluster. The Kubernetes workload shape is shared with vLLM
(``lmforge.release.manifests``).
"""
from __future__ import annotations

from pathlib import Path

import yaml

from lmforge.io import write_text
from lmforge.release import deploy_vllm
from lmforge.release.dashboards import dashboard_json, prometheus_yml
from lmforge.release.manifests import (HEADER, adapter_comment, adapter_rule, gpu_container, host_prologue,
                                       pvc_note, slurm_script, workload_docs)
from lmforge.release.config import DeployConfig, ServeConfig

TGI_FILES = {"run": "tgi-run.sh", "kubernetes": "kubernetes.yaml", "slurm": "tgi.sbatch"}
QUEUE_METRIC = "tgi_queue_size"
# TGI's launcher takes --dtype float16|bfloat16 only: it cannot serve the float32 release unchanged
PRECISION = ("Precision: TGI has no float32 (its --dtype takes float16 or bfloat16), so it serves the\n"
             "# float32 release cast to {dtype} (deploy.tgi_dtype). For float32 as evaluated, serve it with\n"
             "# vLLM (vllm-*, --dtype deploy.vllm.dtype) or `lmforge serve` (serve.dtype).")
ADAPTER_RULE = adapter_rule(QUEUE_METRIC)


def tgi_env(d: DeployConfig, s: ServeConfig, port: int, shards: int | str) -> dict[str, str]:
    """TGI launcher settings as its environment variables. The shard count is always explicit:
    TGI 3.3.5 miscounts GPUs under NVIDIA_VISIBLE_DEVICES=all."""
    return {
        "MODEL_ID": d.model_mount,
        "NUM_SHARD": str(shards),
        "PORT": str(port),
        "HOSTNAME": "0.0.0.0",
        "MAX_INPUT_TOKENS": str(s.max_input_tokens),
        "MAX_TOTAL_TOKENS": str(s.max_total_tokens),
        "MAX_BATCH_PREFILL_TOKENS": str(s.max_input_tokens + 50),
        "MAX_CONCURRENT_REQUESTS": str(s.max_concurrent_requests),
        "MAX_BATCH_SIZE": str(s.max_batch_size),
        "MAX_STOP_SEQUENCES": "4",
        "DTYPE": d.tgi_dtype,   # explicit: TGI has no float32 (see PRECISION)
        "HF_HUB_OFFLINE": "1",
    }


def run_script(d: DeployConfig, s: ServeConfig) -> str:
    env = tgi_env(d, s, d.container_port, '"${NUM_SHARD:-1}"')   # one GPU unless NUM_SHARD says more
    env_lines = "".join(f"  -e {k}={v} \\\n" for k, v in env.items())
    return f"""#!/usr/bin/env bash
# {HEADER}
# Serve models/release with the official Text Generation Inference image on one GPU host.
# {PRECISION.format(dtype=d.tgi_dtype)}
#   MODEL_DIR=/abs/path/to/release CONTAINER_RUNTIME=podman GPU_FLAGS="--device nvidia.com/gpu=all" ./tgi-run.sh
{host_prologue(d, TGI_FILES["run"], d.image_ref)}# shellcheck disable=SC2086
exec "$RUNTIME" run --rm --name {d.name}-tgi $GPU_FLAGS --shm-size 1g \\
  -p {d.host_port}:{d.container_port} \\
  -v "$(cd "$MODEL_DIR" && pwd)":{d.model_mount}:ro \\
{env_lines}  "$IMAGE"
"""


def kubernetes_docs(d: DeployConfig, s: ServeConfig) -> list[dict]:
    env = [{"name": n, "value": v} for n, v in tgi_env(d, s, d.container_port, d.kubernetes.gpus).items()]
    container = gpu_container(d, "tgi", d.image_ref, env=env)
    return workload_docs(d, "tgi", container, QUEUE_METRIC)


def kubernetes_yaml(d: DeployConfig, s: ServeConfig) -> str:
    head = (f"# {HEADER}\n# kubectl apply -f kubernetes.yaml\n# {PRECISION.format(dtype=d.tgi_dtype)}\n" +
            pvc_note(d) +
            "# The autoscaler reads tgi_queue_size through the custom metrics API; with prometheus-adapter,\n"
            "# a rule such as:\n" + adapter_comment(ADAPTER_RULE))
    return head + yaml.safe_dump_all(kubernetes_docs(d, s), sort_keys=False)


def sbatch_script(d: DeployConfig, s: ServeConfig) -> str:
    flags = " \\\n    ".join(
        ["--model-id " + d.model_mount, "--port $PORT", "--hostname 0.0.0.0", f"--num-shard {d.slurm.gpus}",
         # the shards' sockets per job: the host's /tmp is shared by every job on the node
         '--shard-uds-path "${TMPDIR:-/tmp}/lmforge-tgi-${SLURM_JOB_ID:-$$}"',
         f"--max-input-tokens {s.max_input_tokens}", f"--max-total-tokens {s.max_total_tokens}",
         f"--max-batch-prefill-tokens {s.max_input_tokens + 50}",
         f"--max-concurrent-requests {s.max_concurrent_requests}", f"--max-batch-size {s.max_batch_size}",
         f"--dtype {d.tgi_dtype}"])   # explicit: TGI has no float32 (PRECISION)
    return slurm_script(d, engine="tgi", label="TGI", image=d.image, tag=d.tag, sif_env="TGI_SIF",
                        sif_default=d.slurm.image_file, command="text-generation-launcher", flags=flags)


def tgi_texts(d: DeployConfig, s: ServeConfig) -> dict[str, str]:
    return {"run": run_script(d, s), "kubernetes": kubernetes_yaml(d, s), "slurm": sbatch_script(d, s)}


def write_deploy_files(d: DeployConfig, s: ServeConfig) -> dict[str, Path]:
    """Write the chosen engines' files plus the scrape config and dashboard; keys like `vllm_run`."""
    out = Path(d.out_dir)
    engines = {"tgi": (TGI_FILES, tgi_texts), "vllm": (deploy_vllm.FILES, deploy_vllm.texts)}
    files = {"prometheus": out / "prometheus.yml", "grafana": out / "grafana-dashboard.json"}
    write_text(files["prometheus"], prometheus_yml(d, HEADER))
    write_text(files["grafana"], dashboard_json(d))
    for engine, (names, texts) in engines.items():
        if engine not in d.engines:
            for name in names.values():
                (out / name).unlink(missing_ok=True)
            continue
        for key, text in texts(d, s).items():
            path = files[f"{engine}_{key}"] = out / names[key]
            write_text(path, text)
            if key in ("run", "slurm"):
                path.chmod(0o755)
    return files
