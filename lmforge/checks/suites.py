"""What "good data" means at the two data-layer boundaries, as GX expectation suites.

* Curated corpus (``data/curated/*.parquet``): the contract columns are present, ids
  are non-null and unique, text length lies within bounds, the language is one the
  curation keeps, the source is a configured source, the split is train/val, and no
  e-mail address survived PII redaction (the RFC 2606 placeholders the redactor
  writes, ``@example.com``/``@example.org``, are allowed).
* Packed tokens (``data/tokens/``): one row per shard with its shape, dtype and
  min/max token id, next to what ``meta.json``, the tokenizer and params say; the
  suite asks that token ids stay below the vocabulary size, rows have ``seq_len+1``
  tokens, meta.json matches the tokenizer's hash and size, every shard is listed and
  exists, row counts agree with meta.json, and padding only ends a split.

The suites run through ``lmforge.checks.runner.run_checks``, so a failure names the
expectation and the file the offending rows came from.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from lmforge.config import require

CURATED_COLUMNS = ["id", "url", "source", "language", "text", "split"]


@dataclass
class CuratedChecks:
    """params.yaml `checks.curated`."""

    min_chars: int = 50
    max_chars: int = 1_000_000
    # None: the languages the curate stage keeps (data.language.allowed and per-source overrides)
    languages: Optional[list[str]] = None
    email_allowed_domains: list[str] = field(default_factory=lambda: ["example.com", "example.org"])
    min_rows: int = 1

    def __post_init__(self):
        require(0 <= self.min_chars <= self.max_chars,
                f"checks.curated: need 0 <= min_chars <= max_chars, got {self.min_chars}, {self.max_chars}")
        require(self.min_rows >= 1, "checks.curated.min_rows: must be >= 1")


@dataclass
class TokenChecks:
    """params.yaml `checks.tokens`."""

    required_splits: list[str] = field(default_factory=lambda: ["train", "val"])


@dataclass
class ChecksConfig:
    """params.yaml `checks:` section."""

    curated: CuratedChecks = field(default_factory=CuratedChecks)
    tokens: TokenChecks = field(default_factory=TokenChecks)


def email_regex(allowed_domains: Sequence[str]) -> str:
    """An address-like string whose domain is not one of ``allowed_domains``."""
    allowed = "|".join(re.escape(d) for d in allowed_domains)
    skip = f"(?!(?:{allowed})\\b)" if allowed else ""
    return rf"[A-Za-z0-9._%+-]+@{skip}(?:[A-Za-z0-9-]+\.)+[A-Za-z]{{2,}}\b"


def load_curated(files: Sequence[Path]):
    """All curated shards as one DataFrame, plus a Series naming each row's file."""
    import pandas as pd
    import pyarrow.parquet as pq

    frames, owners = [], []
    for f in files:
        t = pq.read_table(f)
        frames.append(t.to_pandas())
        owners.extend([str(f)] * t.num_rows)
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CURATED_COLUMNS)
    return df, pd.Series(owners, index=df.index, dtype=object)


def curated_expectations(cfg: CuratedChecks, sources: Sequence[str], languages: Sequence[str]) -> list:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectTableColumnsToMatchSet(column_set=CURATED_COLUMNS, exact_match=False),
        gxe.ExpectTableRowCountToBeBetween(min_value=cfg.min_rows),
        gxe.ExpectColumnValuesToNotBeNull(column="id"),
        gxe.ExpectColumnValuesToBeUnique(column="id"),
        gxe.ExpectColumnValuesToNotBeNull(column="text"),
        gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=cfg.min_chars, max_value=cfg.max_chars),
        gxe.ExpectColumnValuesToBeInSet(column="language", value_set=sorted(languages)),
        gxe.ExpectColumnValuesToBeInSet(column="source", value_set=sorted(sources)),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "val"]),
        gxe.ExpectColumnValuesToNotMatchRegex(column="text", regex=email_regex(cfg.email_allowed_domains)),
    ]


def shard_frame(tokens_dir: str | os.PathLike):
    """One row per shard (listed in meta.json or found on disk) with what the suite checks."""
    import pandas as pd

    root = Path(tokens_dir)
    meta_path = root / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path}: missing (run the tokenize stage first)")
    meta = json.loads(meta_path.read_text())
    splits = meta.get("splits") or {}
    listed = {s: list(v.get("shards", [])) for s, v in splits.items()}
    on_disk: dict[str, list[str]] = {}
    for p in sorted(root.glob("*/shard_*.npy")):
        on_disk.setdefault(p.parent.name, []).append(f"{p.parent.name}/{p.name}")
    rows = []
    for split in sorted(set(listed) | set(on_disk)):
        names = list(dict.fromkeys(listed.get(split, []) + on_disk.get(split, [])))
        per_split = []
        for i, name in enumerate(names):
            path = root / name
            r = {"file": str(path), "split": split, "listed_in_meta": name in listed.get(split, []),
                 "exists": path.is_file(), "rows": 0, "row_len": -1, "dtype": "missing",
                 "min_id": 0, "max_id": 0, "pads_before_last_row": 0}
            if r["exists"]:
                a = np.load(path, mmap_mode="r")
                r["dtype"] = a.dtype.name
                if a.ndim == 2:
                    r["rows"], r["row_len"] = int(a.shape[0]), int(a.shape[1])
                if a.size:
                    r["min_id"], r["max_id"] = int(a.min()), int(a.max())
                    pad_id = meta.get("pad_id")
                    body = a[:-1] if i == len(names) - 1 and a.ndim == 2 else a
                    r["pads_before_last_row"] = int((np.asarray(body) == pad_id).sum()) if pad_id is not None else 0
            per_split.append(r)
        total = sum(r["rows"] for r in per_split)
        for r in per_split:
            r["split_rows"] = total
            r["meta_split_rows"] = int((splits.get(split) or {}).get("rows", -1))
        rows.extend(per_split)
    for r in rows:
        r.update({"meta_vocab_size": meta.get("vocab_size"), "meta_seq_len": meta.get("seq_len"),
                  "meta_row_len": meta.get("row_len"), "meta_dtype": meta.get("dtype"),
                  "meta_tokenizer_sha256": meta.get("tokenizer_sha256")})
    cols = ["file", "split", "listed_in_meta", "exists", "rows", "row_len", "dtype", "min_id", "max_id",
            "pads_before_last_row", "split_rows", "meta_split_rows", "meta_vocab_size", "meta_seq_len",
            "meta_row_len", "meta_dtype", "meta_tokenizer_sha256"]
    df = pd.DataFrame(rows, columns=cols)
    return df, df["file"].copy()


def token_expectations(cfg: TokenChecks, vocab_size: int, tokenizer_sha256: str, seq_len: int) -> list:
    import great_expectations.expectations as gxe

    dtype = "uint16" if vocab_size < 1 << 16 else "uint32"
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnDistinctValuesToContainSet(column="split", value_set=list(cfg.required_splits)),
        gxe.ExpectColumnValuesToBeInSet(column="exists", value_set=[True]),
        gxe.ExpectColumnValuesToBeInSet(column="listed_in_meta", value_set=[True]),
        gxe.ExpectColumnValuesToBeBetween(column="rows", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="max_id", min_value=0, max_value=vocab_size - 1),
        gxe.ExpectColumnValuesToBeBetween(column="min_id", min_value=0),
        gxe.ExpectColumnValuesToBeInSet(column="row_len", value_set=[seq_len + 1]),
        gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=[dtype]),
        gxe.ExpectColumnValuesToBeInSet(column="pads_before_last_row", value_set=[0]),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="split_rows", column_B="meta_split_rows"),
        gxe.ExpectColumnValuesToBeInSet(column="meta_vocab_size", value_set=[vocab_size]),
        gxe.ExpectColumnValuesToBeInSet(column="meta_tokenizer_sha256", value_set=[tokenizer_sha256]),
        gxe.ExpectColumnValuesToBeInSet(column="meta_seq_len", value_set=[seq_len]),
        gxe.ExpectColumnValuesToBeInSet(column="meta_row_len", value_set=[seq_len + 1]),
        gxe.ExpectColumnValuesToBeInSet(column="meta_dtype", value_set=[dtype]),
    ]
