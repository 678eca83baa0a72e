"""Packed token shards (docs/CONTRACTS.md ``data/tokens``) read by memory map.

The pretraining data position is a single integer, the number of rows consumed
so far across all ranks; the order of rows is a permutation drawn from
``(seed, epoch)``. Together they make the data stream a pure function of the
checkpoint, so a resumed run sees exactly the batches an uninterrupted run would
have seen, with any number of processes.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from lmforge.stage import InputError

IGNORE = -100


class TokenDataError(InputError):
    """The packed token folder is malformed or does not fit the model."""


class PackedTokens:
    """One split of ``data/tokens``: rows of ``seq_len + 1`` tokens across mmapped shards."""

    def __init__(self, tokens_dir: str | Path, split: str):
        self.root = Path(tokens_dir)
        meta_path = self.root / "meta.json"
        if not meta_path.exists():
            raise TokenDataError(f"{meta_path}: not found (run the tokenize stage first)")
        try:
            self.meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as e:
            raise TokenDataError(f"{meta_path}: not valid JSON ({e})") from e
        for key in ("seq_len", "row_len", "vocab_size", "splits", "pad_id"):
            if key not in self.meta:
                raise TokenDataError(f"{meta_path}: missing key '{key}'")
        self.seq_len, self.row_len = int(self.meta["seq_len"]), int(self.meta["row_len"])
        if self.row_len != self.seq_len + 1:
            raise TokenDataError(f"{meta_path}: row_len {self.row_len} != seq_len + 1 ({self.seq_len + 1})")
        if split not in self.meta["splits"]:
            raise TokenDataError(f"{meta_path}: no split '{split}' (has {sorted(self.meta['splits'])})")
        info = self.meta["splits"][split]
        self.vocab_size, self.pad_id = int(self.meta["vocab_size"]), self.meta["pad_id"]
        self.shards, starts, total = [], [], 0
        for rel in info["shards"]:
            p = self.root / rel
            if not p.exists():
                raise TokenDataError(f"{meta_path}: split '{split}' lists {rel}, which does not exist")
            arr = np.load(p, mmap_mode="r")
            if arr.ndim != 2 or arr.shape[1] != self.row_len:
                raise TokenDataError(f"{p}: shape {arr.shape}, expected (rows, {self.row_len})")
            self.shards.append(arr)
            starts.append(total)
            total += arr.shape[0]
        if "rows" in info and int(info["rows"]) != total:
            raise TokenDataError(f"{meta_path}: split '{split}' says {info['rows']} rows, shards hold {total}")
        if total == 0:
            raise TokenDataError(f"{meta_path}: split '{split}' has no rows")
        self.rows, self.split = total, split
        self._starts = np.asarray(starts, dtype=np.int64)
        self._perm_cache: dict[tuple[int, int], np.ndarray] = {}

    def max_token(self) -> int:
        return int(max(int(s.max()) for s in self.shards))

    def check_fits(self, vocab_size: int, seq_len: int) -> None:
        """Fail at start if the data cannot train a model of this vocab and context."""
        where = self.root / "meta.json"
        if self.vocab_size != vocab_size:
            raise TokenDataError(f"{where}: vocab_size {self.vocab_size} does not match the "
                                 f"tokenizer/model vocabulary of {vocab_size}")
        if self.seq_len != seq_len:
            raise TokenDataError(f"{where}: seq_len {self.seq_len} does not match the model's "
                                 f"context length {seq_len} (pretrain.seq_len)")
        top = self.max_token()
        if top >= vocab_size:
            raise TokenDataError(f"{where}: split '{self.split}' holds token id {top} >= vocab_size {vocab_size}")

    def row(self, i: int) -> np.ndarray:
        s = int(np.searchsorted(self._starts, i, side="right") - 1)
        return self.shards[s][i - self._starts[s]]

    def order(self, seed: int, epoch: int) -> np.ndarray:
        key = (seed, epoch)
        if key not in self._perm_cache:
            self._perm_cache = {key: np.random.default_rng([seed, epoch]).permutation(self.rows)}
        return self._perm_cache[key]

    def rows_to_batch(self, idx) -> tuple[torch.Tensor, torch.Tensor]:
        arr = np.stack([np.asarray(self.row(int(i)), dtype=np.int64) for i in idx])
        x = torch.from_numpy(arr[:, :-1].copy())
        y = torch.from_numpy(arr[:, 1:].copy())
        if self.pad_id is not None:
            y[y == int(self.pad_id)] = IGNORE
        return x, y

    def shuffled_batch(self, seed: int, position: int, size: int):
        """Rows ``position .. position+size`` of the endless seeded shuffle."""
        idx = []
        for k in range(position, position + size):
            epoch, j = divmod(k, self.rows)
            idx.append(self.order(seed, epoch)[j])
        return self.rows_to_batch(idx)
