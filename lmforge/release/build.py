"""Release: the post-trained model as a self-describing, servable folder.

`release(cfg, params)` turns `models/dpo` into `models/release`: full merged weights
as safetensors (a LoRA adapter folder is merged here if post-training left one),
the tokenizer with its chat template, a generation_config.json whose stop ids include
the chat end marker, a model card (README.md, written by ``card``) and a machine-readable
lineage.json beside it (``lineage``). The folder is written atomically.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from lmforge.chat import stop_token_ids
from lmforge.io import atomic_dir, file_sha256
from lmforge.release.card import load_scores, model_card
from lmforge.release.config import ReleaseConfig
from lmforge.release.lineage import git_commit, load_lock, upstream
from lmforge.stage import InputError


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


def generation_config(model, tokenizer, source: Path, repetition_penalty: float | None = None):
    """Source generation config (or the model's), stopping at EOS and the chat end marker, with
    the served default ``repetition_penalty`` when one is set."""
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
    if repetition_penalty is not None:
        gen.repetition_penalty = repetition_penalty
    return gen


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
    model.generation_config = generation_config(model, tokenizer, source, cfg.repetition_penalty)
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
