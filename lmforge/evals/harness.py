"""Run lmforge's evaluation tasks with lm-evaluation-harness and flatten the scores.

Why lm-eval and not our own loop: its task YAMLs (``evals/tasks/``) are the format other
groups publish scores in, and its scoring (acc/acc_norm, rolling log-likelihood to bits per
byte, generate-until) is the reference implementation. lmforge only chooses the data
(lmforge/builders/items.py), the model folder and the subsample; nothing here downloads.

Two ``simple_evaluate`` calls on one loaded model: knowledge and language-modelling tasks on
raw text, then the chat tasks (refusal) through the tokenizer's chat template, as served.

Signal or noise: ``evals.limit`` takes a fixed random subset of each task's items (seeded
by ``evals.seed`` and the task name, handed to lm-eval as its ``samples`` indices), never
the first N, which are not a sample of anything. lm-eval's own standard error
(``acc_stderr``) comes with every accuracy, and each multiple-choice task reports its
chance level (``chance``: the mean of 1/choices over the items scored), so a reader can
tell an accuracy from a coin. The default limit keeps the standard error at or below
0.03 (at most sqrt(0.25/278) at any accuracy).
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
from pathlib import Path
from typing import Literal

from lmforge.config import require
from lmforge.gates import threshold_failures


@dataclasses.dataclass
class EvalGate:
    """Thresholds on the scores, keyed ``task.metric``; like the post-training gates
    (lmforge.align.evaluate), ``mode: fail`` stops the graph and ``warn`` only reports."""
    mode: Literal["fail", "warn"] = "fail"
    min: dict[str, float] = dataclasses.field(default_factory=dict)   # e.g. lmforge_manpages_mc.acc: 0.3
    max: dict[str, float] = dataclasses.field(default_factory=dict)   # e.g. lmforge_pydoc_bpb.bits_per_byte: 3.0

    def __post_init__(self):
        for key in [*self.min, *self.max]:
            require(key.count(".") == 1, f"evals.gate: keys are task.metric, got {key!r}")


@dataclasses.dataclass
class EvalsConfig:
    tasks: list[str] = dataclasses.field(default_factory=lambda: [
        "lmforge_manpages_mc", "lmforge_docstrings_mc", "lmforge_pydoc_bpb"])
    chat_tasks: list[str] = dataclasses.field(default_factory=lambda: ["lmforge_refusal"])
    limit: int | None = 300    # items per task, a fixed random subset (seed); null = all
    seed: int = 0              # the subset's seed: the same items every run
    full: bool = False         # true = every item of every task, whatever limit says
    batch_size: int = 16
    threads: int = 1           # torch threads
    tasks_dir: str = "evals/tasks"
    gate: EvalGate = dataclasses.field(default_factory=EvalGate)

    def __post_init__(self):
        require(self.limit is None or self.limit > 0, f"evals.limit must be > 0 or null, got {self.limit}")
        require(self.batch_size > 0 and self.threads > 0, "evals.batch_size and evals.threads must be > 0")
        require(bool(self.tasks or self.chat_tasks), "evals.tasks and evals.chat_tasks are both empty")

    @property
    def item_limit(self) -> int | None:
        return None if self.full else self.limit


def model_args(model_dir: str) -> dict:
    """lm-eval ``hf`` model arguments for a local folder (a LoRA adapter folder loads its base).

    The device is the GPU when there is one (bf16 where the GPU has it in hardware), else the
    CPU in fp32: an eval stage never runs on a CPU while a GPU sits idle."""
    from lmforge.train.dist import native_bf16, preferred_device

    adapter = Path(model_dir) / "adapter_config.json"
    args = {"pretrained": model_dir, "dtype": "bfloat16" if native_bf16() else "float32",
            "device": str(preferred_device())}
    if adapter.exists():
        base = json.loads(adapter.read_text()).get("base_model_name_or_path")
        args.update(pretrained=base, peft=model_dir, tokenizer=model_dir)
    return args


def flatten(results: dict) -> dict:
    """``{task: {metric: value}}`` from lm-eval's results (``acc,none`` -> ``acc``), plus ``n``."""
    out = {}
    for task, scores in sorted(results.get("results", {}).items()):
        row = {}
        for key, v in scores.items():
            metric, _, filt = key.partition(",")
            if isinstance(v, (int, float)) and not isinstance(v, bool) and metric not in ("alias", "sample_len"):
                row[metric if filt in ("none", "") else f"{metric}_{filt}"] = float(v)
        n = results.get("n-samples", {}).get(task, {})
        row["n"] = int(n.get("effective", 0))
        out[task] = row
    return out


def subsets(tasks: dict, limit: int | None, seed: int) -> dict[str, list[int]] | None:
    """lm-eval ``samples``: per task, ``limit`` item indices drawn once from ``random.Random``
    seeded by ``seed`` and the task name (sorted), or None for every item."""
    if limit is None:
        return None
    out = {}
    for name, task in tasks.items():
        n = len(task.eval_docs)
        out[name] = sorted(random.Random(f"{seed}:{name}").sample(range(n), min(n, limit)))
    return out


def chance_levels(tasks: dict, samples: dict[str, list[int]] | None) -> dict[str, float]:
    """Mean 1/choices over the scored items of each multiple-choice task."""
    out = {}
    for name, task in tasks.items():
        if task.OUTPUT_TYPE != "multiple_choice":
            continue
        docs = list(task.eval_docs)
        idx = samples[name] if samples else range(len(docs))
        out[name] = sum(1.0 / len(task.doc_to_choice(docs[i])) for i in idx) / max(1, len(idx))
    return out


def evaluate(model_dir: str, cfg: EvalsConfig) -> dict:
    """Every task of ``cfg`` on the HF folder ``model_dir`` (on ``model_args``' device), offline; flat scores."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not (Path(model_dir) / "config.json").exists() and not (Path(model_dir) / "adapter_config.json").exists():
        raise FileNotFoundError(f"{model_dir}: no model folder (config.json) to evaluate")
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    torch.set_num_threads(cfg.threads)
    lm = HFLM(batch_size=cfg.batch_size, **model_args(model_dir))
    # lm-eval bounds generation by max_length (context + the task's max_gen_toks), but a
    # max_new_tokens in the model's generation_config.json takes precedence over it in
    # transformers; drop it so the task's budget holds
    lm.model.generation_config.max_new_tokens = None
    tm = TaskManager(include_path=str(Path(cfg.tasks_dir).resolve()), include_defaults=False)
    scores = {}
    for tasks, chat in ((cfg.tasks, False), (cfg.chat_tasks, True)):
        if tasks:
            loaded = tm.load(list(tasks))["tasks"]
            picks = subsets(loaded, cfg.item_limit, cfg.seed)
            # bootstrap_iters > 0 turns on lm-eval's standard errors (closed form for means)
            res = simple_evaluate(model=lm, tasks=list(tasks), task_manager=tm, samples=picks,
                                  apply_chat_template=chat, log_samples=False, bootstrap_iters=100,
                                  random_seed=0, numpy_random_seed=0, torch_random_seed=0, fewshot_random_seed=0)
            scores.update(flatten(res))
            for name, level in chance_levels(loaded, picks).items():
                scores.setdefault(name, {})["chance"] = level
    return scores


def gate_failures(scores: dict, gate: EvalGate) -> list[str]:
    """Every threshold of ``gate`` the ``scores`` (task -> metric -> value) miss or did not measure,
    one line each (``lmforge.gates``)."""
    flat = {f"{task}.{metric}": v for task, s in scores.items() if isinstance(s, dict) for metric, v in s.items()}
    bounds = [(key, op, threshold) for bound, op in ((gate.min, ">="), (gate.max, "<="))
              for key, threshold in sorted(bound.items())]
    return threshold_failures(flat, bounds, "evals.gate")
