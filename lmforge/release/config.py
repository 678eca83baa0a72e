"""Typed params of the release room: the `release` folder, the `serve` limits and the `deploy` targets.

`release` says what is released and how its card and gate read (lmforge.release.build).

`serve` holds TGI's launcher limits once, so the local `lmforge serve` run by the
deploy stage and the TGI and vLLM container, Kubernetes and SLURM files it writes all
enforce the same max_input_tokens / max_total_tokens / max_concurrent_requests /
max_batch_size (as far as each engine has the knob; see lmforge.release.deploy_vllm).
`deploy` holds which engines get files (`engine: tgi | vllm | both`), where and how they
run (image tags, ports, cluster resources), the size of the deploy stage's smoke load
and its served = offline check.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

from lmforge.config import require
from lmforge.replies import ReplyCheck
from lmforge.model import context_length


@dataclasses.dataclass
class ServeConfig:
    max_input_tokens: int = 192
    max_total_tokens: int | None = None  # null = the model's context (config.json), as TGI does
    max_concurrent_requests: int = 32
    max_batch_size: int = 8
    batch_wait_ms: float = 5.0
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"

    def __post_init__(self):
        total = self.max_total_tokens
        require(0 < self.max_input_tokens and (total is None or self.max_input_tokens < total),
                "serve.max_input_tokens must be positive and below serve.max_total_tokens")
        require(self.max_concurrent_requests >= 1, "serve.max_concurrent_requests must be >= 1")
        require(self.max_batch_size >= 1, "serve.max_batch_size must be >= 1")
        require(self.batch_wait_ms >= 0, "serve.batch_wait_ms must be >= 0")

    def for_model(self, model_dir: str) -> "ServeConfig":
        """These limits with ``max_total_tokens`` filled in from the model's context when null."""
        if self.max_total_tokens is not None:
            return self
        total = context_length(model_dir)
        require(self.max_input_tokens < total, f"serve.max_input_tokens must be below the model's context ({total})")
        return dataclasses.replace(self, max_total_tokens=total)

    def launcher_args(self) -> list[str]:
        """The same limits as `lmforge serve` / `text-generation-launcher` flags."""
        return ["--max-input-tokens", str(self.max_input_tokens), "--max-total-tokens", str(self.max_total_tokens),
                "--max-concurrent-requests", str(self.max_concurrent_requests),
                "--max-batch-size", str(self.max_batch_size)]


@dataclasses.dataclass
class KubernetesConfig:
    namespace: str = "default"
    min_replicas: int = 1    # the Deployment sets no replicas: the autoscaler owns the count
    max_replicas: int = 4
    target_queue_size: int = 4  # average queued requests per pod the autoscaler aims at (tgi_queue_size,
    #                              vllm:num_requests_waiting)
    gpus: int = 1
    cpu: str = "4"
    memory: str = "32Gi"
    shm_size: str = "1Gi"
    model_pvc: str = "lmforge-models"  # PersistentVolumeClaim holding the release folder
    model_subpath: str = "release"

    def __post_init__(self):
        require(1 <= self.min_replicas <= self.max_replicas,
                "deploy.kubernetes: need 1 <= min_replicas <= max_replicas")
        require(self.target_queue_size >= 1, "deploy.kubernetes.target_queue_size must be >= 1")


@dataclasses.dataclass
class SlurmConfig:
    partition: str = "gpu"
    account: str = ""
    time: str = "04:00:00"
    gpus: int = 1
    cpus: int = 8
    mem: str = "64G"
    port: int = 8080
    image_file: str = "$HOME/.cache/lmforge/tgi.sif"  # apptainer image of TGI, pulled on first run


@dataclasses.dataclass
class SmokeConfig:
    requests: int = 16
    max_new_tokens: int = 16
    concurrency: list[int] = dataclasses.field(default_factory=lambda: [1, 8])
    startup_timeout_s: float = 120.0
    check: ReplyCheck = dataclasses.field(default_factory=ReplyCheck)   # degenerate-output gate, held-out prompts

    def __post_init__(self):
        require(self.requests >= 1 and self.max_new_tokens >= 1, "deploy.smoke: requests and max_new_tokens >= 1")
        require(bool(self.concurrency) and all(c >= 1 for c in self.concurrency),
                "deploy.smoke.concurrency must be a non-empty list of positive integers")


@dataclasses.dataclass
class VllmConfig:
    """The vLLM target: the official OpenAI-compatible image and the knobs TGI has no twin for."""

    image: str = "vllm/vllm-openai"
    tag: str = "v0.34.0"   # tests/release/vllm_cli_flags.json is read from this version (scripts/vllm_flags.py)
    # the release is float32 (release.dtype) and meant to be served so, as `lmforge serve` and the
    # served = offline check run it; `auto` would let vLLM cast float32 weights to float16
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "float32"
    gpu_memory_utilization: float = 0.9
    host_port: int = 8000   # vllm-run.sh's host port (vLLM's own default); TGI's is deploy.host_port
    image_file: str = "$HOME/.cache/lmforge/vllm.sif"  # apptainer image for the SLURM script

    def __post_init__(self):
        require(bool(self.tag) and ":" not in self.tag, "deploy.vllm.tag: give the image tag alone, e.g. v0.22.0")
        require(0 < self.gpu_memory_utilization <= 1, "deploy.vllm.gpu_memory_utilization must be in (0, 1]")

    @property
    def image_ref(self) -> str:
        return f"{self.image}:{self.tag}"


ENGINES = {"tgi": ("tgi",), "vllm": ("vllm",), "both": ("tgi", "vllm")}


@dataclasses.dataclass
class ServedEvalConfig:
    """Served = offline (lmforge/evals/served.py): these multiple-choice tasks through the running
    server's /v1/completions must pick the same choice as the offline transformers run, item by item."""
    enabled: bool = True
    tasks: list[str] = dataclasses.field(default_factory=lambda: ["lmforge_manpages_mc"])
    limit: int | None = 40   # first items per task; null = all
    batch_size: int = 8      # prompts per request (at most serve.max_batch_size)

    def __post_init__(self):
        require(self.limit is None or self.limit > 0, f"deploy.served_eval.limit must be > 0 or null, got {self.limit}")
        require(self.batch_size >= 1, "deploy.served_eval.batch_size must be >= 1")
        require(not self.enabled or bool(self.tasks), "deploy.served_eval.tasks is empty; set enabled: false instead")


@dataclasses.dataclass
class DeployConfig:
    out_dir: str = "deploy"
    engine: Literal["tgi", "vllm", "both"] = "both"  # which engines' files the deploy stage writes
    model_dir: str = "models/release"
    name: str = "lmforge"
    image: str = "ghcr.io/huggingface/text-generation-inference"
    tag: str = "3.3.7"
    container_port: int = 80
    host_port: int = 8081   # tgi-run.sh's host port: distinct from vLLM's (8000) and the gateway's (8080)
    model_mount: str = "/data/release"
    # TGI's --dtype takes float16 or bfloat16 only, so TGI cannot serve the float32 release as
    # it is (left unset it picks float16); its files pass this cast explicitly. float32 is
    # served by `lmforge serve` (serve.dtype) and vLLM (deploy.vllm.dtype).
    tgi_dtype: Literal["bfloat16", "float16"] = "bfloat16"
    kubernetes: KubernetesConfig = dataclasses.field(default_factory=KubernetesConfig)
    slurm: SlurmConfig = dataclasses.field(default_factory=SlurmConfig)
    vllm: VllmConfig = dataclasses.field(default_factory=VllmConfig)
    smoke: SmokeConfig = dataclasses.field(default_factory=SmokeConfig)
    served_eval: ServedEvalConfig = dataclasses.field(default_factory=ServedEvalConfig)

    def __post_init__(self):
        require(bool(self.tag) and ":" not in self.tag, "deploy.tag: give the image tag alone, e.g. 3.3.5")
        require(self.model_mount.startswith("/"), "deploy.model_mount must be an absolute path in the container")

    @property
    def image_ref(self) -> str:
        return f"{self.image}:{self.tag}"

    @property
    def engines(self) -> tuple[str, ...]:
        return ENGINES[self.engine]


@dataclasses.dataclass
class ReleaseConfig:
    source: str = "models/dpo"
    out_dir: str = "models/release"
    name: str = "lmforge-tiny"
    description: str = "A small Llama-style model pretrained, instruction-tuned and preference-tuned by lmforge."
    license: str = "apache-2.0"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    lock_file: str = "dvc.lock"
    eval_metrics: str | None = "metrics/eval_dpo.json"   # lm-eval scores for the card; missing = none
    language: list[str] = dataclasses.field(default_factory=lambda: ["en"])   # the card's `language`
    # the card's `datasets`: Hub ids, if the data is published; empty = the source inputs of the
    # lineage (the crawl folders and committed data, with their DVC hashes in the card's body)
    datasets: list[str] = dataclasses.field(default_factory=list)
    # the card's `base_model`: the Hub id this model was fine-tuned from; null for lmforge's own
    # from-scratch pretraining (the lineage then names the pretrained checkpoint and its hash)
    base_model: str | None = None
    card_params: list[str] = dataclasses.field(default_factory=lambda: [
        "seed", "data", "tokenizer", "tokenize", "pretrain", "sft", "reward", "dpo", "release"])
    check: ReplyCheck = dataclasses.field(default_factory=ReplyCheck)   # the release gate (stages/release.py)
    # the served default, written to generation_config.json: vLLM (`--generation-config auto`),
    # transformers' generate and `lmforge serve` apply it to requests that set none; null = none
    repetition_penalty: float | None = None

    def __post_init__(self):
        require(bool(self.source) and bool(self.out_dir), "release.source and release.out_dir must be set")
        require(self.source != self.out_dir, "release.out_dir must differ from release.source")
        require(self.repetition_penalty is None or self.repetition_penalty > 0,
                f"release.repetition_penalty must be > 0 or null, got {self.repetition_penalty}")
