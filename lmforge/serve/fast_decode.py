"""A lean decode step for Llama-architecture models: transformers' arithmetic, less Python.

On a CPU a decode step of a small model pays for every PyTorch operation Python dispatches,
on top of the arithmetic: transformers' `LlamaForCausalLM.forward` goes through ~20
modules per layer, output dataclasses, mask and rotary-embedding construction and keyword
plumbing for every token. `LlamaDecodeStep` runs the same arithmetic on the same tensors
(the model's own weights and rotary table, transformers' own `sdpa_attention_forward`)
with a few Python lines per layer, for one new token per row over the engine's KV cache
(or a prefill), so its logits are bitwise those of the model's forward
(tests/serve/test_fast_decode.py checks it on padded, GQA and bf16 batches and prefills).
With `batch_kernels="onednn"` (the engine's default) batches of two or more rows take
oneDNN's prepacked products instead (weights.Product): faster, equal to float32 rounding,
not bitwise; one row stays bitwise. What each gained is in docs/LOG.md (issue 24).

Any other architecture, attention implementation or dynamic rotary scaling keeps the
model's own forward: `LlamaDecodeStep.build` returns None and says why in the log.
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from transformers.cache_utils import Cache
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import create_causal_mask

from lmforge.serve.weights import Product

log = logging.getLogger(__name__)

_STATIC_ROPE = {"default", "linear", "llama3", "yarn"}  # tables that do not change with the sequence length


def unsupported(model) -> str | None:
    """Why `model` cannot take the lean step (None: it can)."""
    cfg = model.config
    rope = (getattr(cfg, "rope_parameters", None) or {}).get("rope_type", "default")
    checks = [
        (type(model).__name__ == "LlamaForCausalLM", f"architecture {type(model).__name__}"),
        (getattr(cfg, "_attn_implementation", None) == "sdpa", f"attention {cfg._attn_implementation!r}"),
        (rope in _STATIC_ROPE, f"rotary scaling {rope!r}"),
        (getattr(cfg, "pretraining_tp", 1) == 1, "pretraining_tp > 1"),
        (not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules()), "module hooks"),
    ]
    return next((why for ok, why in checks if not ok), None)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """transformers' LlamaRMSNorm.forward, inlined."""
    dtype = x.dtype
    x = x.to(torch.float32)
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)).to(dtype)


class _Layer:
    """One decoder layer's tensors, looked up once (nn.Module attribute access costs per token)."""

    def __init__(self, layer, batch_kernels: str, rows: int):
        a, mlp = layer.self_attn, layer.mlp
        self.attn = a
        self.norm1 = (layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon)
        self.norm2 = (layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon)
        # q, k, v read one input, as gate and up do: one product each for a batch (weights.Product)
        self.qkv = Product([a.q_proj, a.k_proj, a.v_proj], batch_kernels, rows)
        self.o = Product(a.o_proj, batch_kernels, rows)
        self.gate_up = Product([mlp.gate_proj, mlp.up_proj], batch_kernels, rows)
        self.down = Product(mlp.down_proj, batch_kernels, rows)
        self.act = F.silu if isinstance(mlp.act_fn, torch.nn.SiLU) else mlp.act_fn
        self.heads = a.config.num_attention_heads
        self.scaling = a.scaling


class LlamaDecodeStep:
    """`step(ids, positions, mask, cache)` -> next-token logits `[rows, vocab]`, as the model's forward
    (a decode step, or a prefill).

    Rotary embedding: transformers computes `q * cos + rotate_half(q) * sin` for q and for k.
    Here q and k are rotated together (one set of elementwise ops for both), and
    `rotate_half(x) * sin` is `x.roll(half) * signed_sin` with `signed_sin = cat(-sin1, sin2)`:
    the same products up to an exact sign flip (transformers' sin repeats its half twice), so
    the same bits with 4 operations instead of 7 per tensor.

    `batch_kernels`: "torch" (`F.linear` throughout) or "onednn" (batches through oneDNN,
    weights.Product); `rows`: the batch size the oneDNN copies are packed for.
    """

    def __init__(self, model, batch_kernels: str = "torch", rows: int = 8):
        cfg = model.config
        inner = model.model
        self.config = cfg
        self.rotary = inner.rotary_emb
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.layers = [_Layer(layer, batch_kernels, rows) for layer in inner.layers]
        self.embed = inner.embed_tokens.weight
        self.norm = (inner.norm.weight, inner.norm.variance_epsilon)
        self.head = Product(model.lm_head, batch_kernels, rows)
        self.dtype = self.embed.dtype
        self._cos = self._sin = torch.empty(0)
        self._table(max(1, cfg.max_position_embeddings))

    @classmethod
    def build(cls, model, batch_kernels: str = "torch", rows: int = 8) -> "LlamaDecodeStep | None":
        why = unsupported(model)
        if why is not None:
            log.info("decode steps use the model's own forward (%s)", why)
            return None
        return cls(model, batch_kernels, rows)

    def _table(self, length: int) -> None:
        """cos and signed sin of positions 0..length-1 from the model's own rotary embedding (the
        values it computes per step: one product per element, no accumulation)."""
        with torch.inference_mode():
            cos, sin = self.rotary(torch.zeros(1, dtype=self.dtype), torch.arange(length)[None])
        cos, sin = cos[0], sin[0]
        half = self.head_dim // 2
        if not torch.equal(sin[:, :half], sin[:, half:]):
            raise ValueError("rotary sin does not repeat its halves; the lean step cannot rotate exactly")
        self._cos, self._sin = cos, torch.cat([-sin[:, :half], sin[:, half:]], -1)

    def __call__(self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None,
                 cache: Cache) -> torch.Tensor:
        """Logits of each row's last position, `[rows, vocab]`.

        `ids`, `positions`: `[rows, n]`; `mask`: `[rows, width]` (1 = real) or None when no row
        is padded. A decode step (n = 1) attends over the mask's real columns; a prefill (n > 1)
        causally, with transformers' own `create_causal_mask` when rows are padded.
        """
        rows, n = ids.shape
        top = int(positions.max())
        if top >= self._cos.shape[0]:
            self._table(2 * (top + 1))
        cos, sin = self._cos[positions][:, :, None], self._sin[positions][:, :, None]   # [rows, n, 1, head_dim]
        half, hd = self.head_dim // 2, self.head_dim
        h = F.embedding(ids, self.embed)
        if n > 1 and mask is not None:   # a padded prefill: transformers' own mask, as its forward builds it
            attn_mask = create_causal_mask(config=self.config, inputs_embeds=h, attention_mask=mask, cache=cache,
                                           position_ids=positions)
        else:
            attn_mask = None if mask is None else mask[:, None, None, :].bool()
        for i, L in enumerate(self.layers):
            x = _rms_norm(h, *L.norm1)
            q, k, v = L.qkv(x)
            q, k, v = q.view(rows, n, -1, hd), k.view(rows, n, -1, hd), v.view(rows, n, -1, hd).transpose(1, 2)
            qk = torch.cat([q, k], 2)
            qk = qk * cos + qk.roll(half, -1) * sin
            q, k = qk[:, :, :L.heads].transpose(1, 2), qk[:, :, L.heads:].transpose(1, 2)
            k, v = cache.layers[i].update(k, v)
            o, _ = sdpa_attention_forward(L.attn, q, k, v, attn_mask, dropout=0.0, scaling=L.scaling)
            h = h + L.o(o.reshape(rows, n, -1).contiguous())
            x = _rms_norm(h, *L.norm2)
            gate, up = L.gate_up(x)
            h = h + L.down(L.act(gate) * up)
        return self.head(_rms_norm(h, *self.norm)[:, -1:])[:, -1]   # the model's logits_to_keep=1
