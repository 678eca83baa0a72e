"""The optimisation recipe: AdamW parameter groups, the LR schedule, DeepSpeed's config.

Kept apart from the training loop so the SFT stage (and tests) reuse exactly the
same pieces: ``deepspeed_config`` builds the DeepSpeed JSON from a handful of
arguments, ``param_groups`` exempts norms, biases and embeddings from weight
decay, and ``lr_at`` is the schedule as a pure function (linear warm-up, then
cosine decay to ``min_lr_ratio`` of the peak at the last step).
"""
from __future__ import annotations

import math


def lr_at(step: int, peak: float, max_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """LR used by optimizer step ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(1, max_steps - 1 - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class CosineSchedule:
    """LR scheduler DeepSpeed steps at each optimizer step; its state is one integer.

    A plain class (not ``torch.optim.lr_scheduler.LambdaLR``) because DeepSpeed's
    ZeRO optimizers are not ``torch.optim.Optimizer`` instances; this only needs
    ``param_groups``.
    """

    def __init__(self, optimizer, peak: float, max_steps: int, warmup_steps: int, min_ratio: float):
        self.optimizer = optimizer
        self.peak, self.max_steps, self.warmup, self.min_ratio = peak, max_steps, warmup_steps, min_ratio
        self.last_step = 0
        self._apply()

    def lr(self) -> float:
        return lr_at(self.last_step, self.peak, self.max_steps, self.warmup, self.min_ratio)

    def _apply(self):
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr()

    def step(self, *_, **__):
        self.last_step += 1
        self._apply()

    def get_last_lr(self):
        return [self.lr() for _ in self.optimizer.param_groups]

    def get_lr(self):
        return self.get_last_lr()

    def state_dict(self):
        return {"last_step": self.last_step}

    def load_state_dict(self, state):
        self.last_step = int(state["last_step"])
        self._apply()


def param_groups(model, weight_decay: float):
    """Two AdamW groups: matrices decay; norms, biases and embeddings do not.

    A ZeRO-3 partitioned parameter is judged by its full shape (``ds_shape``)."""
    decay, no_decay, seen = [], [], set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        if len(getattr(p, "ds_shape", p.shape)) < 2 or "embed" in name or "norm" in name or name.endswith(".bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model, lr: float, betas, eps: float, weight_decay: float):
    """torch AdamW (foreach) - no DeepSpeed op to compile, works with ZeRO 0-3."""
    import torch

    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=tuple(betas), eps=eps)


def grad_accum_steps(global_batch_tokens: int, seq_len: int, micro_batch: int, world: int) -> int:
    """Micro-steps per optimizer step so that the global batch is at least the target."""
    rows = max(1, math.ceil(global_batch_tokens / seq_len))
    return max(1, math.ceil(rows / (micro_batch * world)))


def deepspeed_config(zero_stage: int, micro_batch_size: int, grad_accum: int, world_size: int,
                     grad_clip: float = 1.0, bf16: bool = False, offload: bool = False) -> dict:
    """The DeepSpeed config dict used by pretraining (and reusable by SFT).

    A torch optimizer is passed to ``deepspeed.initialize``, hence
    ``zero_allow_untested_optimizer``; no DeepSpeed Adam op is compiled.
    """
    zero: dict = {"stage": zero_stage}
    if zero_stage >= 1:
        zero.update(contiguous_gradients=True, overlap_comm=False, reduce_scatter=True)
    if zero_stage == 3:
        # zero.Init's memory-efficient linear changes the forward's arithmetic: keep F.linear
        zero.update(stage3_gather_16bit_weights_on_model_save=True,
                    stage3_param_persistence_threshold=0, memory_efficient_linear=False)
    if offload and zero_stage >= 1:
        zero["offload_optimizer"] = {"device": "cpu"}
    return {
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "gradient_accumulation_steps": grad_accum,
        "train_batch_size": micro_batch_size * grad_accum * world_size,
        "gradient_clipping": grad_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": bool(bf16)},
        "fp16": {"enabled": False},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
