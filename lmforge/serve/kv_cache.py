"""The running batch's KV cache and attention mask, and the surgery continuous batching needs.

Continuous batching changes the batch between decode steps: newcomers join after their
prefill (left-padded to a common width), finished or cancelled rows leave, and leading
columns that are padding in every remaining row are dropped. transformers' caches grow
(`update`) and drop rows, but cannot left-pad, merge two batches or drop leading columns;
`BatchCache` does that, and keeps the mask that says which columns are real in each row.
The engine asks it for each step's attention mask and position ids, and never touches a
cache tensor itself.

Full-attention layers are `BufferedLayer`s: transformers' `DynamicLayer` whose keys and
values are views of a preallocated buffer with spare columns, so a decode step writes its
column in place instead of concatenating (copying) the whole cache, and a batch that
changes shape gets one new buffer, not a new `DynamicCache`. Other layer kinds (sliding
window, ...) stay transformers' own and are rebuilt by their own `update`.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from transformers.cache_utils import DYNAMIC_LAYER_TYPE_MAPPING, Cache, DynamicLayer, get_layer_types_and_kwargs


class BufferedLayer(DynamicLayer):
    """A `DynamicLayer` whose keys/values live in a buffer with `spare` free columns past the end."""

    def __init__(self, spare: int = 32):
        super().__init__()
        self.spare = spare
        self._keys = torch.empty(0)
        self._values = torch.empty(0)

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self._keys = key_states.new_zeros((*key_states.shape[:2], 0, key_states.shape[3]))
        self._values = value_states.new_zeros((*value_states.shape[:2], 0, value_states.shape[3]))
        self.keys = self._keys
        self.values = self._values
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start = self.keys.shape[2]
        end = start + key_states.shape[2]
        if end > self._keys.shape[2]:
            self._reserve(end + self.spare)
        self._keys[:, :, start:end] = key_states
        self._values[:, :, start:end] = value_states
        self.cut(end)
        return self.keys, self.values

    def cut(self, width: int) -> None:
        """Keep the first `width` columns (after a pass that failed half-way through the layers)."""
        self.keys = self._keys[:, :, :width]
        self.values = self._values[:, :, :width]

    def _reserve(self, capacity: int) -> None:
        width = self.keys.shape[2]
        keys = self._keys.new_zeros((*self._keys.shape[:2], capacity, self._keys.shape[3]))
        values = self._values.new_zeros((*self._values.shape[:2], capacity, self._values.shape[3]))
        keys[:, :, :width] = self.keys
        values[:, :, :width] = self.values
        self._keys = keys
        self._values = values
        self.cut(width)


def _left_pad(t: torch.Tensor, width: int, dim_from_end: int) -> torch.Tensor:
    """`t` with zero columns in front so that its dimension `-dim_from_end` is `width` long."""
    missing = width - t.shape[-dim_from_end]
    if missing == 0:
        return t
    return F.pad(t, (0, 0) * (dim_from_end - 1) + (missing, 0))


class BatchCache:
    """The KV cache and attention mask (`[rows, width]`, 1 = a real token) of rows decoding together."""

    def __init__(self, config, *, spare: int = 32):
        types, kwargs = get_layer_types_and_kwargs(config.get_text_config(decoder=True))
        self.kinds = [(DYNAMIC_LAYER_TYPE_MAPPING[t], kw) for t, kw in zip(types, kwargs)]
        self.spare = spare
        self.cache: Cache | None = None
        self.mask: torch.Tensor | None = None
        self.padded = False  # some row has padding columns: the model needs the mask

    # ---- state ------------------------------------------------------------------
    @property
    def rows(self) -> int:
        return 0 if self.mask is None else self.mask.shape[0]

    @property
    def slots(self) -> int:
        """rows x width: the cache positions the next step attends over (padding included)."""
        return 0 if self.mask is None else self.mask.numel()

    def new_cache(self) -> Cache:
        """An empty cache of this model's layer kinds, for a prefill pass."""
        layers = [BufferedLayer(self.spare) if kind is DynamicLayer else kind(**kw) for kind, kw in self.kinds]
        return Cache(layers=layers)

    def like(self, cache: Cache, mask: torch.Tensor) -> "BatchCache":
        """A batch of the same model holding `cache` and `mask` (a prefill pass's)."""
        other = BatchCache.__new__(BatchCache)
        other.kinds = self.kinds
        other.spare = self.spare
        other._set(cache, mask)
        return other

    def clear(self) -> None:
        self.cache = None
        self.mask = None
        self.padded = False

    def _set(self, cache: Cache, mask: torch.Tensor) -> None:
        self.cache = cache
        self.mask = mask
        self.padded = bool((mask == 0).any())

    # ---- a decode step ------------------------------------------------------------
    def grow(self) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Open the column of the pending tokens; returns the step's attention mask (None when no
        row is padded: the model then builds none) and each row's position id."""
        positions = self.mask.sum(1, keepdim=True)
        self.mask = F.pad(self.mask, (0, 1), value=1)
        return (self.mask if self.padded else None), positions

    def rollback(self) -> None:
        """Undo `grow` after a failed pass, which may have written the column in some layers."""
        self.mask = self.mask[:, :-1]
        width = self.mask.shape[1]
        for layer in self.cache.layers:
            if isinstance(layer, BufferedLayer):
                layer.cut(width)
            else:
                layer.keys = layer.keys[:, :, :width]
                layer.values = layer.values[:, :, :width]

    # ---- joins and leaves ---------------------------------------------------------
    def select(self, keep: list[int]) -> None:
        """Keep rows `keep` (in that order); drop leading columns that are padding in every row."""
        if not keep:
            return self.clear()
        idx = None if len(keep) == self.rows else torch.tensor(keep)
        mask = self.mask if idx is None else self.mask[idx]
        first = int(mask.any(0).nonzero()[0])
        if idx is None and first == 0:
            return

        def kept(t: torch.Tensor) -> torch.Tensor:
            rows = t if idx is None else t[idx]
            return rows[:, :, first:]

        self._set(self._rebuild(kept, self.cache), mask[:, first:])

    def extend(self, other: "BatchCache") -> None:
        """Append `other`'s rows; the narrower batch is left-padded to the wider one's width."""
        if other.rows == 0:
            return
        if self.rows == 0:
            return self._set(other.cache, other.mask)
        width = max(self.mask.shape[1], other.mask.shape[1])

        def stacked(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.cat([_left_pad(a, width, 2), _left_pad(b, width, 2)])

        cache = self._rebuild(stacked, self.cache, other.cache)
        self._set(cache, torch.cat([_left_pad(self.mask, width, 1), _left_pad(other.mask, width, 1)]))

    def split(self) -> list["BatchCache"]:
        """One batch per row (to step rows alone after a batched step failed)."""
        out = []
        for i in range(self.rows):
            one = self.like(self.cache, self.mask)
            one.select([i])
            out.append(one)
        return out

    def _rebuild(self, fn: Callable[..., torch.Tensor], *caches: Cache) -> Cache:
        """A new cache whose every layer holds `fn(tensors)` of that layer in each of `caches`."""
        cache = self.new_cache()
        for layer, olds in zip(cache.layers, zip(*(c.layers for c in caches))):
            layer.update(fn(*(old.keys for old in olds)), fn(*(old.values for old in olds)))
        return cache
