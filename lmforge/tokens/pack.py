"""Tokenize the curated corpus and pack it into fixed-length, memory-mappable rows.

Format (docs/CONTRACTS.md): each split is a list of ``.npy`` shards of shape
``(rows, seq_len + 1)``; documents are followed by ``<|eos|>`` and packed back to
back, a document running on into the next row when it does not fit, so the only
padding is the tail of the last row of a split (packing efficiency is therefore
above 99 % as soon as a split has more than 100 rows). A model trains on
``x = row[:-1], y = row[1:]``.

Why this shape: pretraining opens the shards with ``np.load(mmap_mode="r")`` and
samples rows without reading the corpus into memory, and concatenating the rows and
dropping the padding gives back exactly the EOS-joined token stream (tested).

Speed: documents go to ``tokenizers``' Rust ``encode_batch_fast`` (no offsets) in
chunks, which runs on all ``RAYON_NUM_THREADS`` when ``TOKENIZERS_PARALLELISM`` is on;
the Python side only flattens each chunk with numpy. ``bench/bench_pack.py`` compares
the whole step to a bare ``encode_batch`` of the same texts.

The split is the curated ``split`` column (assigned by hash of id upstream), so it is
deterministic by document and independent of the tokenizer.
"""
from __future__ import annotations

import hashlib
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from lmforge.config import require
from lmforge.io import atomic_dir, write_json
from lmforge.stage import InputError

SPLITS = ("train", "val")


@dataclass
class TokenizeConfig:
    """params.yaml `tokenize:` section."""

    seq_len: int = 256
    rows_per_shard: int = 1024
    chunk_docs: int = 512  # documents per encode_batch call
    workers: int = 2  # Rust threads for encoding (RAYON_NUM_THREADS)

    def __post_init__(self):
        require(8 <= self.seq_len <= 1 << 20, f"tokenize.seq_len: must be in [8, 1048576], got {self.seq_len}")
        require(self.rows_per_shard >= 1, "tokenize.rows_per_shard: must be >= 1")
        require(self.chunk_docs >= 1, "tokenize.chunk_docs: must be >= 1")
        require(self.workers >= 1, "tokenize.workers: must be >= 1")


def copies(doc_id: str, weight: float) -> int:
    """How many times a training document appears under its source's sampling ``weight``.

    The whole part of the weight repeats every document; the fractional part keeps a
    deterministic share of them, chosen by a hash of the id (so reruns agree).
    """
    whole = int(weight)
    h = int.from_bytes(hashlib.sha1(f"weight:{doc_id}".encode()).digest()[:8], "big") / 2**64
    return whole + (1 if h < weight - whole else 0)


def dtype_for(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size < 1 << 16 else np.dtype(np.uint32)


def iter_documents(files: Sequence[Path], chunk_docs: int) -> Iterator[dict[str, list]]:
    """Chunks of curated rows (columns id, source, language, text, split) in file order."""
    import pyarrow.parquet as pq

    cols = ["id", "source", "language", "text", "split"]
    for f in files:
        pf = pq.ParquetFile(f)
        missing = [c for c in cols if c not in pf.schema_arrow.names]
        if missing:
            raise InputError(f"{f}: curated shard lacks column(s) {missing} (see docs/CONTRACTS.md)")
        for batch in pf.iter_batches(batch_size=chunk_docs, columns=cols):
            chunk = batch.to_pydict()
            bad = sorted({s for s in chunk["split"] if s not in SPLITS}, key=str)
            if bad:
                raise InputError(f"{f}: split values {bad} not in {list(SPLITS)}")
            if any(t is None for t in chunk["text"]):
                raise InputError(f"{f}: null text in a curated row")
            yield chunk


def flatten(ids: Sequence[Sequence[int]], eos_id: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate token lists with an EOS after each; also return each list's length."""
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    out = np.empty(int(lengths.sum()) + len(ids), dtype=dtype)
    ends = np.cumsum(lengths + 1)
    out[ends - 1] = eos_id
    starts = ends - 1 - lengths
    for s, x, n in zip(starts.tolist(), ids, lengths.tolist()):
        if n:
            out[s:s + n] = x
    return out, lengths


class ShardWriter:
    """Cuts a token stream into rows of ``row_len`` and writes ``rows_per_shard`` per shard."""

    def __init__(self, out_dir: Path, split: str, row_len: int, rows_per_shard: int,
                 dtype: np.dtype, pad_id: int):
        self.dir, self.split = out_dir / split, split
        self.dir.mkdir(parents=True, exist_ok=True)
        self.row_len, self.rows_per_shard, self.dtype, self.pad_id = row_len, rows_per_shard, dtype, pad_id
        self.pending: list[np.ndarray] = []
        self.pending_len = 0
        self.shards: list[str] = []
        self.rows = self.tokens = self.padding = 0

    def add(self, tokens: np.ndarray) -> None:
        self.pending.append(tokens)
        self.pending_len += len(tokens)
        self.tokens += len(tokens)
        while self.pending_len >= self.row_len * self.rows_per_shard:
            self._emit(self.rows_per_shard)

    def _emit(self, n_rows: int) -> None:
        buf = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        take = n_rows * self.row_len
        self._write(buf[:take].reshape(n_rows, self.row_len))
        rest = buf[take:]
        self.pending, self.pending_len = ([rest] if len(rest) else []), len(rest)

    def _write(self, rows: np.ndarray) -> None:
        name = f"shard_{len(self.shards):05d}.npy"
        np.save(self.dir / name, np.ascontiguousarray(rows, dtype=self.dtype))
        self.shards.append(f"{self.split}/{name}")
        self.rows += len(rows)

    def close(self) -> None:
        """Flush whole rows, then the last partial row padded with ``pad_id``."""
        if self.pending_len == 0:
            return
        full = self.pending_len // self.row_len
        tail = self.pending_len - full * self.row_len
        if tail:
            self.padding = self.row_len - tail
            self.pending.append(np.full(self.padding, self.pad_id, dtype=self.dtype))
            self.pending_len += self.padding
            full += 1
        while self.pending_len:
            self._emit(min(full, self.rows_per_shard))
            full -= min(full, self.rows_per_shard)


def length_histogram(lengths: Iterable[int]) -> list[dict]:
    """Documents per token-length bucket (powers of two), the rows of a dvc plots CSV."""
    counts = Counter(int(np.ceil(np.log2(max(n, 1)))) for n in lengths)
    if not counts:
        return []
    return [{"tokens_upto": 1 << b, "documents": counts.get(b, 0)}
            for b in range(min(counts), max(counts) + 1)]


def _pack_metrics(writers: dict, docs: Counter, all_lengths: list[np.ndarray], row_len: int,
                  by_source: Counter, by_language: Counter, weights: dict[str, float] | None):
    """metrics/tokens.json's numbers from the closed shard writers and the counts kept while packing."""
    slots = sum(w.rows for w in writers.values()) * row_len
    real = sum(w.tokens for w in writers.values())
    lengths = np.concatenate(all_lengths) if all_lengths else np.zeros(0, dtype=np.int64)
    metrics = {
        "packing_efficiency": round(real / slots, 6) if slots else 0.0,
        "tokens": real, "slots": slots, "documents": int(sum(docs.values())),
        "doc_tokens_mean": round(float(lengths.mean()), 2) if len(lengths) else 0.0,
        "doc_tokens_max": int(lengths.max()) if len(lengths) else 0,
        "splits": {s: {"rows": w.rows, "tokens": w.tokens, "documents": docs[s], "padding": w.padding,
                       "packing_efficiency": round(w.tokens / (w.rows * row_len), 6) if w.rows else 0.0}
                   for s, w in writers.items()},
        "tokens_per_source": dict(sorted(by_source.items())),
        "source_weights": dict(sorted((weights or {}).items())),
        "tokens_per_language": dict(sorted(by_language.items())),
    }
    return metrics, lengths


def pack(files: Sequence[Path], tokenizer, out_dir: str | os.PathLike, cfg: TokenizeConfig,
         tokenizer_sha256: str, weights: dict[str, float] | None = None) -> tuple[dict, dict, list[dict]]:
    """Tokenize ``files`` and write packed shards + meta.json to ``out_dir`` atomically.

    ``weights`` (source name → sampling weight, `data.sources[].weight`) mix the training
    split: each train document appears ``copies(id, weight)`` times; validation is never
    reweighted, so held-out loss stays comparable across mixtures.

    ``tokenizer`` is a ``tokenizers.Tokenizer``; special-token strings inside documents
    are encoded as plain text (``encode_special_tokens``). Returns (meta, metrics, histogram rows).
    """
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    ids = {t: tokenizer.token_to_id(t) for t in ("<|bos|>", "<|eos|>", "<|pad|>")}
    missing = [t for t, i in ids.items() if i is None]
    if missing:
        raise InputError(f"tokenizer lacks special token(s) {missing} (see docs/CONTRACTS.md)")
    dtype, row_len = dtype_for(vocab), cfg.seq_len + 1
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    # A document that contains the text "<|eos|>" must not inject a real EOS token.
    tokenizer.encode_special_tokens = True
    by_source: Counter = Counter()
    by_language: Counter = Counter()
    docs: Counter = Counter()
    all_lengths: list[np.ndarray] = []
    import pyarrow.parquet as pq
    from tqdm import tqdm

    total = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    bar = tqdm(total=total, desc="tokenize", unit="doc", file=sys.stderr, mininterval=1.0, dynamic_ncols=True)
    with atomic_dir(out_dir) as tmp, bar:
        writers = {s: ShardWriter(tmp, s, row_len, cfg.rows_per_shard, dtype, ids["<|pad|>"]) for s in SPLITS}
        for chunk in iter_documents(files, cfg.chunk_docs):
            bar.update(len(chunk["text"]))
            encs = encode(chunk["text"], add_special_tokens=False)
            toks = [e.ids for e in encs]
            for split in SPLITS:
                sel = [i for i, s in enumerate(chunk["split"]) if s == split]
                if split == "train" and weights:
                    sel = [i for i in sel
                           for _ in range(copies(chunk["id"][i], weights.get(chunk["source"][i], 1.0)))]
                if not sel:
                    continue
                flat, lengths = flatten([toks[i] for i in sel], ids["<|eos|>"], dtype)
                writers[split].add(flat)
                docs[split] += len(sel)
                all_lengths.append(lengths)
                for i, n in zip(sel, lengths.tolist()):
                    by_source[chunk["source"][i]] += n + 1
                    by_language[chunk["language"][i]] += n + 1
        for w in writers.values():
            w.close()
        splits = {s: {"shards": w.shards, "rows": w.rows, "tokens": w.tokens, "documents": docs[s],
                      "padding": w.padding} for s, w in writers.items()}
        meta = {"seq_len": cfg.seq_len, "row_len": row_len, "dtype": dtype.name, "vocab_size": vocab,
                "tokenizer_sha256": tokenizer_sha256, "bos_id": ids["<|bos|>"], "eos_id": ids["<|eos|>"],
                "pad_id": ids["<|pad|>"], "splits": splits}
        write_json(tmp / "meta.json", meta)
    metrics, lengths = _pack_metrics(writers, docs, all_lengths, row_len, by_source, by_language, weights)
    return meta, metrics, length_histogram(lengths.tolist())
