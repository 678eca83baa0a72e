"""The release's model card: README.md with Hugging Face front matter.

Kept apart from the merge-and-save code in ``build`` because it is a document, not a
transformation: it names the git commit, the params sections that shaped the model, the
md5 of every upstream artifact from dvc.lock back to the crawl shards (``lineage``), and
the scores of the ``eval_dpo`` stage (lm-evaluation-harness, lmforge/evals) as its
``model-index``, built and checked by ``huggingface_hub.ModelCardData``.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from lmforge.codedeps import is_code
from lmforge.release.config import ReleaseConfig
from lmforge.release.lineage import Artifact


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
Default repetition penalty (generation_config.json `repetition_penalty`; vLLM, transformers and
`lmforge serve` apply it when a request sets none, TGI does not: send it per request there):
{getattr(model.generation_config, "repetition_penalty", 1.0)}.

## Evaluation

{_scores_section(scores)}

{provenance}
## Parameters

The `params.yaml` sections that shaped this model:

```yaml
{yaml.safe_dump(sections, sort_keys=False).rstrip()}
```

{_use_section(cfg)}"""
