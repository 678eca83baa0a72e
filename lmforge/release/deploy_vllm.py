"""Deployment files for vLLM's OpenAI-compatible server, beside the TGI ones.

TGI is archived (maintenance mode from 2025-12, read-only since 2026-03) and points
its users to vLLM, so the deploy stage also writes, from the same release folder and
the same `serve` limits:
- `vllm-run.sh` — `docker run` (or podman) of `vllm/vllm-openai:<tag>`, whose entrypoint
  is `vllm serve`; the release is mounted read-only and given as the model argument;
- `vllm-kubernetes.yaml` — the shared GPU Deployment/Service (``manifests``) with vLLM's
  container, and a HorizontalPodAutoscaler on vLLM's queue gauge
  `vllm:num_requests_waiting`, which the custom metrics API serves as
  `vllm_num_requests_waiting` after a prometheus-adapter rename rule (printed in the
  file's header);
- `vllm.sbatch` — a SLURM job running the same image through apptainer.

How the `serve` limits map: max_total_tokens → `--max-model-len` (vLLM bounds prompt +
output by it; it has no separate input limit, so a prompt over max_input_tokens that
still fits is accepted); max_batch_size → `--max-num-seqs`; max_concurrent_requests
has no vLLM flag (it queues instead of answering 429; the autoscaler watches that queue).
Every flag used here is checked by a test against the names in vLLM's own argument
definitions (tests/release/vllm_cli_flags.json, written by scripts/vllm_flags.py from the pinned wheel).
"""
from __future__ import annotations

import shlex

import yaml

from lmforge.release.manifests import (HEADER, adapter_comment, adapter_rule, gpu_container, host_prologue,
                                       pvc_note, slurm_script, workload_docs)
from lmforge.release.config import DeployConfig, ServeConfig

FILES = {"run": "vllm-run.sh", "kubernetes": "vllm-kubernetes.yaml", "slurm": "vllm.sbatch"}
QUEUE_METRIC = "vllm_num_requests_waiting"  # vllm:num_requests_waiting, renamed by prometheus-adapter
ADAPTER_RULE = adapter_rule("vllm:num_requests_waiting", "^vllm:(.*)$", "vllm_${1}")


def server_flags(d: DeployConfig, s: ServeConfig, port: int | str, gpus: int) -> list[str]:
    """`vllm serve <release>` arguments: the model path first, then the limits as flags."""
    v = d.vllm
    return [d.model_mount,
            "--served-model-name", d.name,
            "--host", "0.0.0.0",
            "--port", str(port),
            "--max-model-len", str(s.max_total_tokens),
            "--max-num-seqs", str(s.max_batch_size),
            "--dtype", v.dtype,
            "--gpu-memory-utilization", str(v.gpu_memory_utilization),
            "--tensor-parallel-size", str(gpus),
            # request defaults from the release's generation_config.json (its repetition penalty), as
            # `lmforge serve` takes them; said explicitly rather than left to the version's default
            "--generation-config", "auto"]


def _flag_lines(flags: list[str], indent: str) -> str:
    """The model argument, then one `--flag value` per line, shell-quoted, with continuations."""
    parts, i = [shlex.quote(flags[0])], 1
    while i < len(flags):
        value = flags[i + 1]
        parts.append(f"{flags[i]} {value if value.startswith('$') else shlex.quote(value)}")
        i += 2
    return f" \\\n{indent}".join(parts)


def run_script(d: DeployConfig, s: ServeConfig) -> str:
    flags = _flag_lines(server_flags(d, s, d.container_port, gpus=1), "    ")
    return f"""#!/usr/bin/env bash
# {HEADER}
# Serve models/release with vLLM's OpenAI-compatible image on one GPU of one host
# (for more, raise --tensor-parallel-size below and expose that many GPUs in GPU_FLAGS).
#   MODEL_DIR=/abs/path/to/release CONTAINER_RUNTIME=podman GPU_FLAGS="--device nvidia.com/gpu=all" ./vllm-run.sh
{host_prologue(d, FILES["run"], d.vllm.image_ref)}# the image's entrypoint is `vllm serve`; what follows the image name is its model argument and flags
# shellcheck disable=SC2086
exec "$RUNTIME" run --rm --name {d.name}-vllm $GPU_FLAGS --ipc=host \\
  -p {d.vllm.host_port}:{d.container_port} \\
  -v "$(cd "$MODEL_DIR" && pwd)":{d.model_mount}:ro \\
  -e HF_HUB_OFFLINE=1 \\
  "$IMAGE" \\
    {flags}
"""


def kubernetes_docs(d: DeployConfig, s: ServeConfig) -> list[dict]:
    container = gpu_container(d, "vllm", d.vllm.image_ref, args=server_flags(d, s, d.container_port, d.kubernetes.gpus),
                              env=[{"name": "HF_HUB_OFFLINE", "value": "1"}])
    return workload_docs(d, "vllm", container, QUEUE_METRIC)


def kubernetes_yaml(d: DeployConfig, s: ServeConfig) -> str:
    head = (f"# {HEADER}\n# kubectl apply -f {FILES['kubernetes']}\n" + pvc_note(d) +
            f"# The autoscaler reads vLLM's gauge vllm:num_requests_waiting as {QUEUE_METRIC} through the\n"
            "# custom metrics API; with prometheus-adapter, a rule such as:\n" + adapter_comment(ADAPTER_RULE))
    return head + yaml.safe_dump_all(kubernetes_docs(d, s), sort_keys=False)


def sbatch_script(d: DeployConfig, s: ServeConfig) -> str:
    flags = _flag_lines(server_flags(d, s, "$PORT", d.slurm.gpus), "    ")
    return slurm_script(d, engine="vllm", label="vLLM", image=d.vllm.image, tag=d.vllm.tag, sif_env="VLLM_SIF",
                        sif_default=d.vllm.image_file, command="vllm serve", flags=flags)


def texts(d: DeployConfig, s: ServeConfig) -> dict[str, str]:
    return {"run": run_script(d, s), "kubernetes": kubernetes_yaml(d, s), "slurm": sbatch_script(d, s)}
