"""``params.yaml: pretrain`` as a typed dataclass.

Every knob of the pretraining recipe lives here with its default, so a typo in
params.yaml fails at start naming the key, and the tiny CPU default is readable
in one place. The recipe itself (AdamW betas, epsilon, decay, clipping, warm-up
fraction, final LR ratio) has the standard values as defaults.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Literal, Optional

from lmforge.config import require


@dataclass
class PretrainConfig:
    tokens_dir: str = "data/tokens"
    tokenizer_dir: str = "models/tokenizer"
    out_dir: str = "models/pretrain"
    # context length the model is built for; null = the data's seq_len (must match)
    seq_len: Optional[int] = None
    max_steps: int = 60
    global_batch_tokens: int = 8192
    micro_batch_size: int = 8
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_frac: float = 0.02
    weight_decay: float = 0.1
    betas: List[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    grad_clip: float = 1.0
    zero_stage: int = 0
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    eval_every: int = 20
    eval_rows: int = 64
    checkpoint_every: int = 16
    keep_last: int = 2
    resume: Literal["auto", "never"] = "auto"
    nan_policy: Literal["skip", "stop"] = "stop"
    max_consecutive_skips: int = 5
    peak_flops: Optional[float] = None
    threads: int = 0
    compile: bool = False
    progress: bool = True

    def __post_init__(self):
        require(self.max_steps >= 1, "pretrain.max_steps: must be >= 1")
        require(self.global_batch_tokens >= 1, "pretrain.global_batch_tokens: must be >= 1")
        require(self.micro_batch_size >= 1, "pretrain.micro_batch_size: must be >= 1")
        require(self.lr > 0, "pretrain.lr: must be > 0")
        require(0 <= self.min_lr_ratio <= 1, "pretrain.min_lr_ratio: must be in [0, 1]")
        require(0 <= self.warmup_frac < 1, "pretrain.warmup_frac: must be in [0, 1)")
        require(self.weight_decay >= 0, "pretrain.weight_decay: must be >= 0")
        require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
                "pretrain.betas: expected two numbers in [0, 1)")
        require(self.eps > 0, "pretrain.eps: must be > 0")
        require(self.grad_clip >= 0, "pretrain.grad_clip: must be >= 0 (0 disables)")
        require(self.zero_stage in (0, 1, 2, 3), f"pretrain.zero_stage: expected 0-3, got {self.zero_stage}")
        require(self.eval_every >= 1, "pretrain.eval_every: must be >= 1")
        require(self.eval_rows >= 1, "pretrain.eval_rows: must be >= 1")
        require(self.checkpoint_every >= 1, "pretrain.checkpoint_every: must be >= 1")
        require(self.keep_last >= 1, "pretrain.keep_last: must be >= 1")
        require(self.max_consecutive_skips >= 1, "pretrain.max_consecutive_skips: must be >= 1")
        require(self.seq_len is None or self.seq_len >= 1, "pretrain.seq_len: must be >= 1 or null")
        require(self.threads >= 0, "pretrain.threads: must be >= 0 (0 = leave torch's default)")

    @property
    def warmup_steps(self) -> int:
        return max(1, round(self.warmup_frac * self.max_steps)) if self.warmup_frac > 0 else 0
