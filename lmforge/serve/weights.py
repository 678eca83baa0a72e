"""Linear weights laid out in memory for fast decoding on CPU.

A decode step multiplies a few rows of activations by every weight matrix of the model,
so on CPU its linear layers are bound by how the BLAS walks the weights. `nn.Linear`
stores its weight as `[out, in]` and computes `x @ weight.T`, which MKL runs as a
transposed product; with the same numbers stored transposed (`[in, out]` contiguous, the
parameter a `.T` view of it) the product reads the weights in the order it needs them.
The values, the modules and their code stay transformers' own: only the storage order
changes, for every linear weight and for a tied embedding (one storage for both).
What it gained is in docs/LOG.md (bench/bench_engine.py).
"""
from __future__ import annotations

import torch


def lay_out_for_decode(model: torch.nn.Module) -> torch.nn.Module:
    """Store every `nn.Linear` weight of `model` as the transpose of a contiguous `[in, out]` matrix."""
    with torch.no_grad():
        for module in model.modules():
            w = module.weight if isinstance(module, torch.nn.Linear) else None
            if w is not None and w.dim() == 2 and w.is_contiguous() and w.device.type == "cpu":
                w.data = w.data.t().contiguous().t()
    return model
