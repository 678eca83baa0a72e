"""Supervised fine-tuning with TRL's SFTTrainer.

The base is ``models/pretrain/hf`` or any local HF model folder (``sft.base_model``);
its tokenizer and chat template are used as they are and saved with the result, so
reward modelling and DPO render prompts exactly as SFT did. Examples are
conversational prompt/completion pairs and ``completion_only_loss`` masks the
prompt, so only the assistant turn (through its end-of-turn token) is learned.

Per-source loss weights (``sft.source_weights``) scale each example's token losses;
TRL has no such knob, so ``WeightedSFTTrainer`` carries a ``loss_weight`` column
through the collator and weights the token-level cross-entropy. The same plain
token cross-entropy is used with all weights 1.0 (it is also about twice as fast on
CPU as TRL's chunked-logprob loss). Packing mixes examples from different sources
in one row, so it needs uniform weights and uses TRL's own loss. LoRA goes
through peft and is merged into full weights before export (``models/sft`` never
holds an adapter).

Checkpoints (``sft.checkpoints``) are the Trainer's own, in ``models/sft_checkpoints``;
a killed run resumes from the newest complete one of the same run
(``lmforge.align.checkpoints``). ``sft.trl_args`` passes any other ``SFTConfig``
field through (``lmforge.align.trl_args``).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pandas as pd

from lmforge.align import checkpoints as ckpt
from lmforge.align import trl_args
from lmforge.align.common import (AdapterConfig, TrainConfig, live_callbacks, load_causal_lm, load_tokenizer,
                                  trained_model, trl_kwargs, with_context)
from lmforge.align.evaluate import GateEvalConfig
from lmforge.config import ParamsError, require
from lmforge.model import token_cross_entropy


@dataclasses.dataclass
class SFTStageConfig:
    base_model: str = "models/pretrain/hf"
    data_dir: str = "data/instructions_checked"
    feedback_dir: str = "data/feedback"
    out_dir: str = "models/sft"
    max_per_source: int = 150  # training examples per source (0 = all)
    source_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    packing: bool = False
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    lora: AdapterConfig = dataclasses.field(default_factory=AdapterConfig)
    eval: GateEvalConfig = dataclasses.field(default_factory=GateEvalConfig)
    checkpoints: ckpt.CheckpointConfig = dataclasses.field(default_factory=ckpt.CheckpointConfig)
    trl_args: dict[str, Any] = dataclasses.field(default_factory=dict)   # any other SFTConfig field

    def check_installed(self) -> None:
        """``trl_args`` against the installed TRL's SFTConfig (``lmforge check``)."""
        trl_args.check_installed("SFTConfig", self.trl_args, "sft.trl_args")

    def __post_init__(self):
        require(self.max_per_source >= 0, f"max_per_source must be >= 0, got {self.max_per_source}")
        for k, v in self.source_weights.items():
            require(v >= 0, f"source_weights.{k} must be >= 0, got {v}")
        if self.packing and any(v != 1.0 for v in self.source_weights.values()):
            raise ParamsError("sft.packing: true mixes sources within a row, so sft.source_weights must all be 1.0")


def read_feedback_sft(feedback_dir: str) -> pd.DataFrame:
    """Harvested SFT pairs (prompt, completion, source); a missing or empty folder gives no rows."""
    path = Path(feedback_dir) / "sft.parquet"
    cols = ["prompt", "response", "source"]
    if not path.exists():
        return pd.DataFrame(columns=cols)
    df = pd.read_parquet(path)
    missing = {"prompt", "completion"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected prompt, completion, source")
    df = df.rename(columns={"completion": "response"})
    df["source"] = "feedback"
    df = df[(df.prompt.str.strip() != "") & (df.response.str.strip() != "")]
    return df[cols]


def training_frame(p: SFTStageConfig, seed: int) -> pd.DataFrame:
    path = Path(p.data_dir) / "train.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: checked instructions missing (run the instructions stage)")
    df = pd.concat([pd.read_parquet(path)[["prompt", "response", "source"]], read_feedback_sft(p.feedback_dir)],
                   ignore_index=True)
    unknown = sorted(set(p.source_weights) - set(df.source))
    if unknown:
        raise ParamsError(f"sft.source_weights: unknown source(s) {unknown}; sources: {sorted(set(df.source))}")
    if p.max_per_source:
        df = pd.concat([g.sample(min(len(g), p.max_per_source), random_state=seed)
                        for _, g in df.groupby("source", sort=True)])
    df = df.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    df["loss_weight"] = df.source.map(lambda s: float(p.source_weights.get(s, 1.0)))
    return df


def to_dataset(df: pd.DataFrame, weights: bool):
    from datasets import Dataset

    rows = {"prompt": [[{"role": "user", "content": x}] for x in df.prompt],
            "completion": [[{"role": "assistant", "content": x}] for x in df.response]}
    if weights:
        rows["loss_weight"] = df.loss_weight.astype(float).tolist()
    return Dataset.from_dict(rows)


class WeightedCollator:
    """TRL's collator plus a per-example ``loss_weight`` tensor."""

    def __init__(self, base):
        self.base = base

    def __call__(self, examples):
        import torch

        w = torch.tensor([float(e["loss_weight"]) for e in examples])
        out = self.base([{k: v for k, v in e.items() if k != "loss_weight"} for e in examples])
        out["loss_weight"] = w
        return out


def _weighted_trainer_cls():
    import torch
    from trl import SFTTrainer

    class WeightedSFTTrainer(SFTTrainer):
        """Token cross-entropy scaled by each example's source weight."""

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if "loss_weight" not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, "loss_weight"]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            w = inputs.pop("loss_weight")
            labels = inputs.pop("labels")
            outputs = model(**inputs, use_cache=False)
            target = labels[:, 1:]
            tok_loss = token_cross_entropy(outputs.logits[:, :-1], target, reduction="none").view(target.shape)
            n = (target != -100).sum() if num_items_in_batch is None else num_items_in_batch
            loss = (tok_loss * w.to(tok_loss.dtype)[:, None]).sum() / torch.as_tensor(n).clamp(min=1)
            if num_items_in_batch is not None and self.args.average_tokens_across_devices:
                # n counts the tokens of every rank, and DDP/DeepSpeed average the gradients over
                # the ranks: scale back up, as Trainer.compute_loss does, or N ranks learn at 1/N
                loss = loss * self.accelerator.num_processes
            return (loss, outputs) if return_outputs else loss

    return WeightedSFTTrainer


def build_trainer(p: SFTStageConfig, seed: int, work_dir: str | None = None, live: str | None = None):
    """The configured (weighted) SFTTrainer, its tokenizer and the training frame."""
    from trl import SFTConfig, SFTTrainer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    # the config first: with ZeRO-3 it makes from_pretrained load straight into partitions (zero.Init)
    fixed = dict(completion_only_loss=True, packing=p.packing, max_length=p.train.max_length,
                 remove_unused_columns=True, **trl_kwargs(p.train, seed, work_dir, p.checkpoints))
    args = trl_args.build(SFTConfig, fixed, p.trl_args, "sft.trl_args")
    tok = load_tokenizer(p.base_model)
    model = load_causal_lm(p.base_model, "sft.base_model")
    df = training_frame(p, seed)
    weighted = not p.packing  # the weighted loss is also ~2x cheaper on CPU than TRL's fused-logprob path
    kwargs = dict(model=model, args=args, train_dataset=to_dataset(df, weighted), processing_class=tok,
                  peft_config=p.lora.peft_config(model), callbacks=live_callbacks(live))
    if weighted:
        collator = WeightedCollator(DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id))
        return _weighted_trainer_cls()(data_collator=collator, **kwargs), tok, df
    return SFTTrainer(**kwargs), tok, df


def train_sft(p: SFTStageConfig, seed: int, work_dir: str | None = None, live: str | None = None):
    """Fine-tune and merge LoRA if any; returns (model, tokenizer, metrics, loss curve).

    The caller evaluates, gates and only then saves (``lmforge.align.common.save_model``)."""
    p = with_context(p, p.base_model)
    trainer, tok, df = build_trainer(p, seed, work_dir, live)
    inputs = [p.base_model, Path(p.data_dir) / "train.parquet", Path(p.feedback_dir) / "sft.parquet"]
    fp = ckpt.fingerprint(ckpt.run_params(p, ("out_dir", "eval", "checkpoints")), seed, inputs)
    train_loss, steps = ckpt.train(trainer, p.checkpoints, fp, "sft")
    model = trained_model(trainer, p.lora.enabled)
    model.eval()
    curve = [{"step": h["step"], "loss": h["loss"]} for h in trainer.state.log_history if "loss" in h]
    return model, tok, {
        "train_examples": len(df),
        "train_loss": train_loss,
        "final_loss": curve[-1]["loss"] if curve else math.nan,
        "steps": steps,
        "lora": p.lora.enabled,
        "examples_by_source": {k: int(v) for k, v in df.groupby("source").size().items()},
    }, curve
