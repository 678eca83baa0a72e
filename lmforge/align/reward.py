"""Reward model with TRL's RewardTrainer.

The reward model is the SFT backbone with a one-output sequence-classification
head (``LlamaForSequenceClassification`` for lmforge's own model; whatever
``AutoModelForSequenceClassification`` gives for an outside base). The config is
copied and ``num_labels`` set to 1 afterwards: building it as
``LlamaConfig(**cfg.to_dict(), num_labels=1)`` keeps two labels and TRL rejects it
(see stack-pitfalls). Pairwise accuracy — how often the held-out chosen reply
scores above the rejected one — is the headline metric (chance is 0.5).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pandas as pd

from lmforge.align import trl_args
from lmforge.align.common import (AdapterConfig, TrainConfig, check_model_dir, live_callbacks, load_tokenizer,
                                  save_model, to_train_device, trained_model, trl_kwargs, with_context)
from lmforge.align.evaluate import reward_scores
from lmforge.align.preferences import check_pairs, to_dataset
from lmforge.config import require
from lmforge.stage import StageFailure


@dataclasses.dataclass
class RewardStageConfig:
    sft_model: str = "models/sft"
    pairs_dir: str = "data/preferences"
    out_dir: str = "models/reward"
    min_accuracy: float | None = None  # held-out pairwise accuracy below this fails the stage
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(max_steps=30, lr=5e-4))
    lora: AdapterConfig = dataclasses.field(default_factory=AdapterConfig)
    trl_args: dict[str, Any] = dataclasses.field(default_factory=dict)   # any other RewardConfig field

    def check_installed(self) -> None:
        """``trl_args`` against the installed TRL's RewardConfig (``lmforge check``)."""
        trl_args.check_installed("RewardConfig", self.trl_args, "reward.trl_args")

    def __post_init__(self):
        require(self.min_accuracy is None or 0 <= self.min_accuracy <= 1, "reward.min_accuracy must be in [0, 1]")


def load_reward_backbone(path: str):
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    check_model_dir(path, "reward.sft_model")
    tok = load_tokenizer(path)
    cfg = AutoConfig.from_pretrained(path)
    cfg.num_labels = 1
    cfg.pad_token_id = tok.pad_token_id
    model = AutoModelForSequenceClassification.from_pretrained(path, config=cfg, dtype=torch.float32)
    return to_train_device(model), tok


def load_reward_model(path: str):
    import torch
    from transformers import AutoModelForSequenceClassification

    check_model_dir(path, "reward model")
    return to_train_device(AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32))


def pairwise_accuracy(rm, tok, df: pd.DataFrame, max_length: int) -> tuple[float, float]:
    """Share of pairs where chosen outscores rejected, and the mean score margin."""
    c = reward_scores(rm, tok, df.prompt.tolist(), df.chosen.tolist(), max_length)
    r = reward_scores(rm, tok, df.prompt.tolist(), df.rejected.tolist(), max_length)
    wins = [a > b for a, b in zip(c, r)]
    return sum(wins) / max(1, len(wins)), sum(a - b for a, b in zip(c, r)) / max(1, len(wins))


def read_pairs(pairs_dir: str, split: str) -> pd.DataFrame:
    path = Path(pairs_dir) / f"{split}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: preference pairs missing (run the preferences stage)")
    return check_pairs(pd.read_parquet(path), str(path))


def train_reward(p: RewardStageConfig, seed: int, work_dir: str | None = None,
                 live: str | None = None) -> tuple[dict, list[dict]]:
    from trl import RewardConfig, RewardTrainer

    from transformers import set_seed

    p = with_context(p, p.sft_model)
    p.check_installed()   # the TRL passthrough before any model loads
    train, val = read_pairs(p.pairs_dir, "train"), read_pairs(p.pairs_dir, "val")
    set_seed(seed)  # the new score head is randomly initialised: same seed, same reward model
    model, tok = load_reward_backbone(p.sft_model)
    acc0, _ = pairwise_accuracy(model, tok, val, p.train.max_length)
    args = trl_args.build(RewardConfig, dict(max_length=p.train.max_length, **trl_kwargs(p.train, seed, work_dir)),
                          p.trl_args, "reward.trl_args")
    trainer = RewardTrainer(model=model, args=args, train_dataset=to_dataset(train), processing_class=tok,
                            peft_config=p.lora.peft_config(model, task_type="SEQ_CLS"),
                            callbacks=live_callbacks(live))
    result = trainer.train()
    model = trained_model(trainer, p.lora.enabled)
    acc, margin = pairwise_accuracy(model, tok, val, p.train.max_length)
    train_acc, _ = pairwise_accuracy(model, tok, train, p.train.max_length)
    if p.min_accuracy is not None and acc < p.min_accuracy:
        raise StageFailure(f"reward model: held-out pairwise accuracy {acc:.3f} < reward.min_accuracy "
                           f"{p.min_accuracy} on {len(val)} pairs; not saved")
    if os.environ.get("RANK", "0") == "0":   # every rank trained the same model; one writes it
        save_model(model, tok, p.out_dir)
    curve = [{"step": h["step"], "loss": h["loss"]} for h in trainer.state.log_history if "loss" in h]
    return {"train_pairs": len(train), "val_pairs": len(val), "accuracy": acc, "accuracy_before": acc0,
            "train_accuracy": train_acc, "margin": margin, "train_loss": float(result.training_loss),
            "steps": int(result.global_step), "architecture": type(model).__name__}, curve
