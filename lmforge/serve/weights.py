"""Linear weights laid out in memory for fast decoding on CPU.

A decode step multiplies a few rows of activations by every weight matrix of the model,
so on CPU its linear layers are bound by how the BLAS walks the weights. `nn.Linear`
stores its weight as `[out, in]` and computes `x @ weight.T`, which MKL runs as a
transposed product; with the same numbers stored transposed (`[in, out]` contiguous, the
parameter a `.T` view of it) the product reads the weights in the order it needs them.
The values, the modules and their code stay transformers' own: only the storage order
changes, for every linear weight and for a tied embedding (one storage for both).

`Product` is one linear layer's product in the lean decode step. One row goes through
`F.linear` (MKL), so a single stream stays bitwise the model's forward. Two or more rows
(a batch) go through oneDNN's kernel on a copy of the weight prepacked once for it, the
kernel torch's own inductor uses for frozen CPU linears: 1.4-1.5x MKL's products at 4-16
rows on this project's machines, but not bitwise MKL's (about 1e-6 relative), and the
copy doubles the linear weights' memory. Layers that read one input (q, k and v; gate and
up) share one packed product for a batch, split after. `batch_kernels="torch"` keeps
`F.linear` for every batch. What each gained is in docs/LOG.md (issue 24).
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

BATCH_KERNELS = ("onednn", "torch")


def lay_out_for_decode(model: torch.nn.Module) -> torch.nn.Module:
    """Store every `nn.Linear` weight of `model` as the transpose of a contiguous `[in, out]` matrix."""
    with torch.no_grad():
        for module in model.modules():
            w = module.weight if isinstance(module, torch.nn.Linear) else None
            if w is not None and w.dim() == 2 and w.is_contiguous() and w.device.type == "cpu":
                w.data = w.data.t().contiguous().t()
    return model


def _onednn(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


def _pack(weight: torch.Tensor, bias: torch.Tensor | None, rows: int) -> torch.Tensor | None:
    """oneDNN's prepacked copy of a float32 CPU `weight` (`[out, in]`), or None where it does not
    apply or does not give `F.linear`'s values to float32 rounding (then the batch keeps `F.linear`)."""
    if weight.device.type != "cpu" or weight.dtype != torch.float32 or not torch.backends.mkldnn.is_available():
        return None
    try:
        with torch.inference_mode():
            packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows)
            x = torch.randn(2, 1, weight.shape[1], generator=torch.Generator().manual_seed(0))
            ok = torch.allclose(_onednn(x, packed, bias), F.linear(x, weight, bias), rtol=1e-4, atol=1e-5)
    except (RuntimeError, AttributeError) as e:   # a torch built without the op, or a shape it refuses
        log.info("batched products use F.linear (oneDNN packing failed: %s)", e)
        return None
    if not ok:
        log.warning("batched products use F.linear (oneDNN's product differs from it on this machine)")
        return None
    return packed


class Product:
    """`x @ weight.T + bias` for `x` of `[rows, n, in]`: of one linear layer, or of several that read
    the same `x` (a list: a tuple of their outputs). `F.linear` per layer for one row; for more,
    one oneDNN product over their stacked weights, prepacked once (when `batch_kernels="onednn"`
    and it applies), split into the layers' outputs."""

    def __init__(self, modules, batch_kernels: str = "onednn", rows: int = 8):
        if batch_kernels not in BATCH_KERNELS:
            raise ValueError(f"batch_kernels must be one of {BATCH_KERNELS}, not {batch_kernels!r}")
        self.single = isinstance(modules, torch.nn.Module)
        mods = [modules] if self.single else list(modules)
        self.parts = [(m.weight, m.bias) for m in mods]
        self.sizes = [m.weight.shape[0] for m in mods]
        self.packed = self.bias = None
        if batch_kernels == "onednn":
            weight = mods[0].weight if self.single else torch.cat([m.weight.detach() for m in mods])
            if any(m.bias is not None for m in mods):
                self.bias = torch.cat([m.bias.detach() if m.bias is not None else m.weight.new_zeros(n)
                                       for m, n in zip(mods, self.sizes)])
            self.packed = _pack(weight, self.bias, rows)

    def __call__(self, x: torch.Tensor):
        if self.packed is not None and x.shape[0] > 1:
            y = _onednn(x, self.packed, self.bias)
            return y if self.single else y.split(self.sizes, -1)
        if self.single:
            return F.linear(x, *self.parts[0])
        return tuple(F.linear(x, w, b) for w, b in self.parts)
