"""The model: a Llama-architecture decoder built from one size dial.

Why transformers' ``LlamaForCausalLM`` rather than our own module: it already is
exactly the architecture the issue asks for (RoPE, SwiGLU, RMSNorm, causal
attention through ``scaled_dot_product_attention`` when built with
``attn_implementation="sdpa"``, so GPUs get flash kernels), and the exported
folder is then the training module itself - export is lossless by construction
and every later stage (TRL, TGI) loads it without conversion.

The size dial is nanochat's: ``depth`` fixes everything else. Width is
``64 * depth`` (aspect ratio 64), heads have dimension 64, the SwiGLU hidden size
is 8/3 of the width rounded up to a multiple of 64. Named sizes only pick a depth:

=======  =====  =====  =====  ====================================================
name     depth  width  heads  parameters (non-embedding; + vocab * width tied)
=======  =====  =====  =====  ====================================================
tiny         4    256      4  3.2M  (+1.0M at vocab 4096) - the CPU default
small       12    768     12  85M   (+39M at GPT-2's vocab 50257 = GPT-2 small's 124M)
medium      16   1024     16  201M
large       24   1536     24  680M
xl          32   2048     32  1.6B
=======  =====  =====  =====  ====================================================
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from lmforge.config import require

SIZES = {"tiny": 4, "small": 12, "medium": 16, "large": 24, "xl": 32}
HEAD_DIM = 64
ASPECT = 64


@dataclass
class ModelConfig:
    """``params.yaml: model``. ``size`` names a depth; ``depth`` overrides it."""

    size: str = "tiny"
    depth: Optional[int] = None
    tie_embeddings: bool = True
    rope_theta: float = 10000.0
    init_std: float = 0.02

    def __post_init__(self):
        require(self.size in SIZES, f"model.size: expected one of {list(SIZES)}, got {self.size!r}")
        require(self.depth is None or self.depth >= 1, f"model.depth: must be >= 1, got {self.depth}")
        require(self.init_std > 0, "model.init_std: must be > 0")

    @property
    def n_layers(self) -> int:
        return self.depth if self.depth is not None else SIZES[self.size]

    @property
    def width(self) -> int:
        return ASPECT * self.n_layers

    @property
    def n_heads(self) -> int:
        return max(1, self.width // HEAD_DIM)

    @property
    def ffn_width(self) -> int:
        return int(math.ceil(self.width * 8 / 3 / 64) * 64)


def llama_config(cfg: ModelConfig, vocab_size: int, seq_len: int, special: dict | None = None):
    """The ``LlamaConfig`` for ``cfg`` at this vocabulary and context length."""
    from transformers import LlamaConfig

    special = special or {}
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.width,
        intermediate_size=cfg.ffn_width,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads,
        max_position_embeddings=seq_len,
        rope_theta=cfg.rope_theta,
        initializer_range=cfg.init_std,
        tie_word_embeddings=cfg.tie_embeddings,
        attention_bias=False,
        mlp_bias=False,
        rms_norm_eps=1e-5,
        hidden_act="silu",
        use_cache=True,          # for generation; every training forward passes use_cache=False
        torch_dtype="float32",
        bos_token_id=special.get("bos_id"),
        eos_token_id=special.get("eos_id"),
        pad_token_id=special.get("pad_id"),
    )


def build_model(cfg: ModelConfig, vocab_size: int, seq_len: int, special: dict | None = None):
    """A freshly initialised ``LlamaForCausalLM`` using SDPA attention."""
    from transformers import LlamaForCausalLM

    conf = llama_config(cfg, vocab_size, seq_len, special)
    conf._attn_implementation = "sdpa"
    return LlamaForCausalLM(conf)


def token_cross_entropy(logits, target, ignore_index: int = -100, reduction: str = "mean"):
    """Cross-entropy of ``[rows, vocab]`` logits against ``[rows]`` targets, computed in fp32.

    fp32 logits (the CPU default) go to ``F.cross_entropy`` as they are. bf16/fp16 logits go
    to DeepSpeed's ``chunked_cross_entropy`` (a Triton kernel on a GPU, row blocks elsewhere):
    the same fp32 loss without the full ``[rows, vocab]`` fp32 copy, its saved log-softmax and
    two more fp32 tensors in backward - most of a ``small`` step's memory traffic.
    """
    import torch
    import torch.nn.functional as F

    target = target.reshape(-1)
    logits = logits.reshape(target.numel(), -1)
    if logits.dtype == torch.float32:
        return F.cross_entropy(logits, target, ignore_index=ignore_index, reduction=reduction)
    from deepspeed.runtime.chunked_cross_entropy import chunked_cross_entropy

    return chunked_cross_entropy(logits, target.long(), ignore_index=ignore_index, reduction=reduction)


def count_params(cfg: ModelConfig, vocab_size: int) -> dict:
    """Parameter counts without building the model (for MFU and reports)."""
    d, f, L = cfg.width, cfg.ffn_width, cfg.n_layers
    per_layer = 4 * d * d + 3 * d * f + 2 * d
    emb = vocab_size * d * (1 if cfg.tie_embeddings else 2)
    return {"non_embedding": L * per_layer + d, "embedding": emb, "total": L * per_layer + d + emb}


def flops_per_token(cfg: ModelConfig, vocab_size: int, seq_len: int) -> float:
    """Training FLOPs per token: 6 * matmul params + causal attention (PaLM appendix B)."""
    d, f, L = cfg.width, cfg.ffn_width, cfg.n_layers
    matmul = L * (4 * d * d + 3 * d * f) + vocab_size * d
    return 6.0 * matmul + 12.0 * L * d * seq_len


def context_length(model_dir: str) -> int:
    """The model's context window (config ``max_position_embeddings``).

    Pretraining sets it from ``tokenize.seq_len``; post-training and serving read it
    back from the model folder, so the context length has one home in params.yaml."""
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(str(model_dir)).max_position_embeddings)
