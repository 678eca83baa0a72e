"""Reading the curated corpus, and hashing artifacts, for the stages after curation.

Kept apart from the tokenizer and packing code so that the validation stage's DVC
dependencies do not include them (a tokenizer change must not rerun the checks).
Files are always read in sorted order, which makes every consumer deterministic.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

from lmforge.stage import InputError


def curated_files(curated_dir: str | os.PathLike) -> list[Path]:
    """The curated Parquet shards in a fixed order; fails clearly when there are none."""
    d = Path(curated_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: curated data folder not found (run the curate stage first)")
    files = sorted(p for p in d.glob("*.parquet") if not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"{d}: no *.parquet shards")
    return files


def iter_texts(files: Sequence[Path], split: str | None = "train", batch_docs: int = 1000,
               limit: int = 0) -> Iterator[list[str]]:
    """Batches of document texts of one split (all splits when ``split`` is None)."""
    import pyarrow.parquet as pq

    seen = 0
    for f in files:
        pf = pq.ParquetFile(f)
        cols = ["text"] + (["split"] if split else [])
        missing = [c for c in cols if c not in pf.schema_arrow.names]
        if missing:
            raise InputError(f"{f}: missing column(s) {missing}")
        for batch in pf.iter_batches(batch_size=batch_docs, columns=cols):
            texts = batch.column("text").to_pylist()
            if split:
                texts = [t for t, s in zip(texts, batch.column("split").to_pylist()) if s == split]
            if limit:
                texts = texts[: limit - seen]
            seen += len(texts)
            if texts:
                yield texts
            if limit and seen >= limit:
                return
