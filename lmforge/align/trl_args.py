"""The TRL passthrough: ``sft.trl_args``, ``reward.trl_args``, ``dpo.trl_args``.

A user who knows TRL can set any field of ``SFTConfig``, ``RewardConfig`` or
``DPOConfig`` (``neftune_noise_alpha``, ``max_grad_norm``, ``optim``, ...) without a
new lmforge knob per field. Two rules keep params the one home of every fact:

- a key must be a field of the config class (its dataclass fields, read from the
  installed TRL); an unknown one fails with a did-you-mean, before any training;
- a key that lmforge sets itself from its own params (``learning_rate`` from
  ``train.lr``, ``beta`` from ``dpo.beta``, ...) or manages (output folder,
  checkpointing, logging) is refused, naming where to set it instead: a passthrough
  never silently loses to, or overrides, lmforge's own setting.

Every other field lmforge passes is a default of lmforge's (``lr_scheduler_type:
cosine``, ``logging_steps``, ``eval_strategy: "no"``, ...), and there the passthrough wins.

A value TRL rejects (its ``__post_init__`` raises) becomes a one-line ParamsError
naming the section's ``trl_args``.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from lmforge.config import ParamsError, did_you_mean

# TrainingArguments fields lmforge sets, and where a user sets them instead (train.* is the stage's train:)
SET_BY_LMFORGE = {
    "max_steps": "train.max_steps", "per_device_train_batch_size": "train.batch_size",
    "per_device_eval_batch_size": "train.batch_size", "gradient_accumulation_steps": "train.grad_accum",
    "learning_rate": "train.lr", "warmup_steps": "train.warmup_steps", "weight_decay": "train.weight_decay",
    "max_length": "train.max_length", "bf16": "train.bf16", "deepspeed": "train.deepspeed",
    "seed": "the top-level seed", "data_seed": "the top-level seed",
    "packing": "sft.packing", "beta": "dpo.beta",
    "output_dir": "checkpoints.dir", "save_strategy": "checkpoints.dir", "save_steps": "checkpoints.every",
    "save_total_limit": "checkpoints.keep_last", "save_only_model": "checkpoints.dir",
    "report_to": "lmforge (DVCLive through lmforge.live)", "use_cpu": "lmforge (accelerate picks the device)",
    "completion_only_loss": "lmforge (SFT learns the assistant turn only)",
    "remove_unused_columns": "lmforge (the weighted collator needs its columns)",
    "resume_from_checkpoint": "lmforge (resumes the stage's own checkpoints)",
    "push_to_hub": "lmforge (nothing leaves the machine)", "hub_model_id": "lmforge (nothing leaves the machine)",
}


def check(cls: type, args: dict[str, Any], key: str) -> dict[str, Any]:
    """``args`` if every key is a settable field of ``cls``; else a ParamsError naming ``key``."""
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    for name in sorted(args):
        if name in SET_BY_LMFORGE:
            raise ParamsError(f"{key}.{name}: set by lmforge from {SET_BY_LMFORGE[name]}; set it there, "
                              f"not in {key}")
        if name not in fields:
            raise ParamsError(f"{key}.{name}: not a field of TRL's {cls.__name__}{did_you_mean(name, fields)}")
    return dict(args)


def check_installed(config: str, args: dict[str, Any], key: str) -> None:
    """``args`` against the installed TRL's ``config`` class (``lmforge check`` and the stage's
    start); TRL is imported only when there is a passthrough to check."""
    if args:
        import trl

        check(getattr(trl, config), args, key)


def build(cls: type, fixed: dict[str, Any], args: dict[str, Any], key: str):
    """``cls`` from lmforge's ``fixed`` fields and the passthrough ``args`` (checked by :func:`check`;
    they win over lmforge's defaults). TRL's own refusal of a passthrough value becomes one line."""
    extra = check(cls, args, key)
    try:
        return cls(**{**fixed, **extra})
    except (ValueError, TypeError) as e:
        if not extra:
            raise
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ParamsError(f"{key} {sorted(extra)}: refused by TRL's {cls.__name__}: {why}") from e
