"""Release: the post-trained model as a self-describing, servable folder.

`release(cfg, params)` turns `models/dpo` into `models/release`: full merged weights
as safetensors (a LoRA adapter folder is merged here if post-training left one),
the tokenizer with its chat template, a generation_config.json whose stop ids include
the chat end marker, and a model card (README.md, Hugging Face front matter) that
names the git commit, the params sections that shaped the model, the md5 of every
upstream artifact from dvc.lock back to the crawl shards (lineage.py), and the scores of
the ``eval_dpo`` stage (lm-evaluation-harness, lmforge/evals) as its ``model-index``. A
machine-readable lineage.json sits beside it. The folder is written atomically.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal

import yaml

from lmforge.codedeps import is_code
from lmforge.config import require
from lmforge.chat import stop_token_ids
from lmforge.replies import ReplyCheck
from lmforge.io import atomic_dir, file_sha256
from lmforge.release.lineage import Artifact, git_commit, load_lock, upstream
from lmforge.stage import InputError


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

    def __post_init__(self):
        require(bool(self.source) and bool(self.out_dir), "release.source and release.out_dir must be set")
        require(self.source != self.out_dir, "release.out_dir must differ from release.source")


class ReleaseError(InputError):
    """The source folder cannot be released; the message names the file."""


def load_merged(source: Path, dtype: str):
    """The source model with any LoRA adapter merged in; (model, adapter_merged)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = getattr(torch, dtype)
    adapter = source / "adapter_config.json"
    if adapter.exists():
        from peft import PeftModel

        base = json.loads(adapter.read_text()).get("base_model_name_or_path")
        if not base or not (Path(base) / "config.json").exists():
            raise ReleaseError(f"{adapter}: base_model_name_or_path {base!r} is not a local model folder")
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype)
        model = PeftModel.from_pretrained(model, source).merge_and_unload()
        return model.eval(), True
    if not (source / "config.json").exists():
        raise ReleaseError(f"{source}: no config.json or adapter_config.json; post-training output missing")
    return AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype).eval(), False


def generation_config(model, tokenizer, source: Path):
    """Source generation config (or the model's), stopping at EOS and the chat end marker."""
    from transformers import GenerationConfig

    try:
        gen = GenerationConfig.from_pretrained(source)
    except OSError:
        gen = GenerationConfig.from_model_config(model.config)
    eos = gen.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    ids.update(stop_token_ids(tokenizer))
    gen.eos_token_id = sorted(i for i in ids if i is not None)
    gen.pad_token_id = tokenizer.pad_token_id
    if tokenizer.bos_token_id is not None:
        gen.bos_token_id = tokenizer.bos_token_id
    return gen


def _table(rows: list[list[str]], head: list[str]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def load_scores(path: str | None) -> dict | None:
    """The metrics JSON an eval stage wrote (lmforge.evals), or None when there is none."""
    return json.loads(Path(path).read_text()) if path and Path(path).is_file() else None


def eval_results(scores: dict) -> list:
    """``huggingface_hub`` EvalResults, one per lm-eval task and metric, unverified."""
    from huggingface_hub import EvalResult

    n_note = "all items" if scores.get("limit") is None else f"first {scores['limit']} items"
    return [EvalResult(task_type="multiple-choice" if "acc" in metrics else "text-generation", task_name=task,
                       dataset_type=f"lmforge/{task.removeprefix('lmforge_')}", dataset_name=task,
                       dataset_config=n_note, metric_type=k, metric_value=round(v, 6), verified=False,
                       source_name="lm-evaluation-harness (evals/tasks)",
                       source_url="https://github.com/EleutherAI/lm-evaluation-harness")
            for task, metrics in sorted(scores.get("tasks", {}).items())
            for k, v in sorted(metrics.items()) if k != "n"]


def front_matter(cfg: ReleaseConfig, model_type: str, scores: dict | None, sources: list[str]) -> str:
    """The card's YAML header, built and checked by ``huggingface_hub.ModelCardData`` (the
    Hub's own schema for ``language``, ``datasets``, ``base_model`` and ``model-index``)."""
    from huggingface_hub import ModelCardData

    data = ModelCardData(language=cfg.language, license=cfg.license, library_name="transformers",
                         pipeline_tag="text-generation", tags=["lmforge", model_type, "text-generation-inference"],
                         datasets=cfg.datasets or sources or None, base_model=cfg.base_model, model_name=cfg.name,
                         eval_results=eval_results(scores) if scores else None)
    return data.to_yaml() + "\n"


def _scores_section(scores: dict | None) -> str:
    if not scores:
        return "Not evaluated: no lm-eval scores were found (the `eval_dpo` stage writes them)."
    rows = [[f"`{t}`", str(m.get("n", "")), ", ".join(f"{k} {v:.4g}" for k, v in sorted(m.items()) if k != "n")]
            for t, m in sorted(scores.get("tasks", {}).items())]
    limit = "every item" if scores.get("limit") is None else f"the first {scores['limit']} items of each task"
    return (f"lm-evaluation-harness on `{scores.get('model', '')}`, {limit} (params `evals`); "
            "tasks and data in `evals/`.\n\n" + _table(rows, ["task", "items", "scores"]))


def _provenance(cfg: ReleaseConfig, commit: str, dirty: bool, artifacts: list[Artifact], stages: list[str],
                files: dict[str, str]) -> str:
    """The card's Provenance section: commit, upstream artifacts and inputs from dvc.lock, file hashes."""
    produced = [a for a in artifacts if a.stage]
    sources = [a for a in artifacts if not a.stage]
    src = next((a for a in produced if a.path == cfg.source.rstrip("/")), None)
    lineage = "\n".join([
        f"- **git commit:** `{commit}`" + (" (work tree had uncommitted changes)" if dirty else ""),
        f"- **released from:** `{cfg.source}`" + (f" (md5 `{src.md5}` in dvc.lock)" if src else ""),
        f"- **upstream stages (dvc.lock):** {', '.join(f'`{s}`' for s in stages) if stages else 'none recorded'}",
    ])
    if not stages:
        lineage += (f"\n\n> **Lineage unknown:** {cfg.lock_file} has no stage producing `{cfg.source}`. "
                    "Release through `dvc repro release` to record it.")
    art = _table([[f"`{a.path}`", a.stage or "", f"`{a.md5}`", str(a.size or ""), str(a.nfiles or "")]
                  for a in produced], ["artifact", "produced by", "md5 (dvc.lock)", "bytes", "files"])
    srcs = _table([[f"`{a.path}`", f"`{a.md5}`" if a.md5 else "—"] for a in sources], ["input", "md5 (dvc.lock)"])
    file_rows = _table([[f"`{k}`", f"`{v}`"] for k, v in sorted(files.items())], ["file", "sha256"])
    return f"""## Provenance

{lineage}

### Upstream artifacts

Every artifact this release was built from, as recorded in `{cfg.lock_file}`, back to the crawl shards.

{art}

### Source inputs

Inputs that no stage produces: crawl shards, committed data and the code of each stage.

{srcs}

### Files in this release

{file_rows}
"""


def _use_section(cfg: ReleaseConfig) -> str:
    """The card's Use and Limitations sections: how to serve this folder, and what it is not."""
    return f"""## Use

Locally, on a CPU (TGI's HTTP API):

```bash
lmforge serve --model-id {cfg.out_dir} --port 3000
curl localhost:3000/generate -H 'Content-Type: application/json' \\
  -d '{{"inputs": "What is Debian?", "parameters": {{"max_new_tokens": 32}}}}'
```

On a GPU, the `deploy` stage writes files that mount this folder (`deploy.engine` picks which):
vLLM's `deploy/vllm-run.sh`, `deploy/vllm-kubernetes.yaml` or `sbatch deploy/vllm.sbatch`, and
Text Generation Inference's `deploy/tgi-run.sh`, `deploy/kubernetes.yaml` or `sbatch deploy/tgi.sbatch`.

Precision: the weights are {cfg.dtype} and the release is meant to be served in {cfg.dtype}, the precision
it was evaluated in: `lmforge serve` loads it so (`serve.dtype`) and vLLM's files pass `--dtype`
(`deploy.vllm.dtype`). TGI cannot serve float32 (its `--dtype` takes float16 or bfloat16 only),
so its files pass the cast `deploy.tgi_dtype` (bfloat16 by default) explicitly; greedy replies in
that precision can differ from the evaluated ones.

## Limitations

A small model trained on a small crawl sample on CPUs: it shows the pipeline, not a useful assistant.
Its outputs can be wrong, repetitive or unsafe; do not rely on them.
"""


def model_card(cfg: ReleaseConfig, *, model, tokenizer, merged: bool, commit: str, dirty: bool,
               params: dict, artifacts: list[Artifact], stages: list[str], files: dict[str, str],
               scores: dict | None = None) -> str:
    c = model.config
    n_params = sum(p.numel() for p in model.parameters())
    sections = {k: params[k] for k in cfg.card_params if k in params}
    data_inputs = [a.path for a in artifacts if not a.stage and a.md5 and not is_code(a.path)]
    front = front_matter(cfg, c.model_type, scores, data_inputs)
    model_rows = [
        ["architecture", f"`{type(model).__name__}`"], ["parameters", f"{n_params:,}"],
        ["layers / hidden size / heads", f"{c.num_hidden_layers} / {c.hidden_size} / {c.num_attention_heads}"],
        ["context length", str(c.max_position_embeddings)], ["vocabulary", str(c.vocab_size)],
        ["weights dtype", cfg.dtype], ["LoRA adapter merged at release", "yes" if merged else "no (already merged)"],
    ]
    provenance = _provenance(cfg, commit, dirty, artifacts, stages, files)
    return f"""---
{front}---

# {cfg.name}

{cfg.description}

## Model

{_table(model_rows, ["", ""])}

Chat format (the tokenizer's `chat_template`): each message is `<|role|>\\n{{content}}<|end|>\\n`;
generation starts after `<|assistant|>\\n` and stops at `<|end|>` or `<|eos|>`
(generation_config.json `eos_token_id`: {json.dumps(getattr(model.generation_config, "eos_token_id", None))}).

## Evaluation

{_scores_section(scores)}

{provenance}
## Parameters

The `params.yaml` sections that shaped this model:

```yaml
{yaml.safe_dump(sections, sort_keys=False).rstrip()}
```

{_use_section(cfg)}"""


def release(cfg: ReleaseConfig, params: dict) -> dict:
    """Write cfg.out_dir from cfg.source; return the release metrics."""
    from transformers import AutoTokenizer

    source = Path(cfg.source)
    if not source.is_dir():
        raise ReleaseError(f"{source}: release source folder not found (run post-training first)")
    model, merged = load_merged(source, cfg.dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise ReleaseError(f"{source}: no tokenizer files ({e})") from None
    if not getattr(tokenizer, "chat_template", None):
        raise ReleaseError(f"{source}: tokenizer has no chat_template (docs/CONTRACTS.md models/tokenizer)")
    model.generation_config = generation_config(model, tokenizer, source)
    artifacts, stages = upstream(load_lock(cfg.lock_file), cfg.source)
    commit, dirty = git_commit()
    with atomic_dir(cfg.out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        files = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / "README.md").write_text(model_card(
            cfg, model=model, tokenizer=tokenizer, merged=merged, commit=commit, dirty=dirty, params=params,
            artifacts=artifacts, stages=stages, files=files, scores=load_scores(cfg.eval_metrics)))
        (tmp / "lineage.json").write_text(json.dumps({
            "git_commit": commit, "git_dirty": dirty, "source": cfg.source, "stages": stages,
            "artifacts": [dataclasses.asdict(a) for a in artifacts], "files_sha256": files}, indent=2) + "\n")
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "size_bytes": sum(p.stat().st_size for p in Path(cfg.out_dir).iterdir() if p.is_file()),
        "adapter_merged": merged,
        "upstream_stages": len(stages),
        "upstream_artifacts": len(artifacts),
        "lineage_complete": bool(stages),
    }
