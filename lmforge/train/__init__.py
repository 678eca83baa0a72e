"""Pretraining with DeepSpeed: recipe, data, checkpoints, loop, export.

Reusable pieces for other stages: ``deepspeed_config`` (the DeepSpeed JSON),
``make_optimizer``/``param_groups`` (AdamW without decay on norms, biases,
embeddings), ``lr_at``/``CosineSchedule`` (warm-up + cosine), ``dist.setup``
(one-process or launched process groups on gloo/nccl).
"""
from lmforge.train.config import PretrainConfig
from lmforge.train.recipe import (CosineSchedule, deepspeed_config, grad_accum_steps, lr_at,
                                  make_optimizer, param_groups)

__all__ = ["PretrainConfig", "CosineSchedule", "deepspeed_config", "grad_accum_steps", "lr_at",
           "make_optimizer", "param_groups"]

