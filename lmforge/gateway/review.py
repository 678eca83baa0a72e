"""Browse curated and rejected documents for human review.

The data stage keeps what its filters kept in ``data/curated/*.parquet`` and what
they dropped, with the filter's name, in ``data/rejected/*.parquet``. A person
reviewing the filters wants to page through both, see why a document was
dropped, and mark it keep or drop; those labels become ``review_labels.jsonl``
in the feedback store and, through harvest, an extra filter list.

The index reloads a set only when its files change (names or mtimes), reads just
the columns it shows, and cuts long texts for the page.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

SETS = ("curated", "rejected")
SHOWN = ("id", "url", "source", "language", "split", "reason", "duplicate_of", "text")


@dataclass
class _Loaded:
    key: tuple
    frame: pd.DataFrame


class DocIndex:
    def __init__(self, data_dir: str | Path, text_chars: int = 4000):
        self.data_dir = Path(data_dir)
        self.text_chars = text_chars
        self._cache: dict[str, _Loaded] = {}

    def _files(self, which: str) -> list[Path]:
        if which not in SETS:
            raise KeyError(f"unknown document set {which!r}; known: {list(SETS)}")
        return sorted((self.data_dir / which).glob("*.parquet"))

    def frame(self, which: str) -> pd.DataFrame:
        files = self._files(which)
        key = tuple((str(f), f.stat().st_mtime_ns) for f in files)
        hit = self._cache.get(which)
        if hit is not None and hit.key == key:
            return hit.frame
        parts = []
        for f in files:
            cols = [c for c in SHOWN if c in pq.read_schema(f).names]
            df = pq.read_table(f, columns=cols).to_pandas()
            df["file"] = f.name
            parts.append(df)
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*SHOWN, "file"])
        for c in SHOWN:
            if c not in frame.columns:
                frame[c] = None
        frame["id"] = frame["id"].astype(str)
        frame["text"] = frame["text"].fillna("").astype(str).str.slice(0, self.text_chars)
        self._cache[which] = _Loaded(key, frame)
        return frame

    def has(self, which: str, doc_id: str) -> bool:
        return bool((self.frame(which)["id"] == doc_id).any())

    def page(self, which: str, offset: int = 0, limit: int = 20, reason: str | None = None,
             labels: dict[str, str] | None = None) -> dict:
        frame = self.frame(which)
        reasons = ({str(k): int(v) for k, v in frame["reason"].value_counts(dropna=True).items()}
                   if which == "rejected" else {})
        if reason:
            frame = frame[frame["reason"] == reason]
        rows = frame.iloc[offset: offset + limit]
        docs = []
        labels = labels or {}
        for rec in rows.to_dict("records"):
            doc = {k: (None if _isna(v) else v) for k, v in rec.items()}
            doc["label"] = labels.get(doc["id"])
            docs.append(doc)
        return {"set": which, "total": int(len(frame)), "offset": offset, "limit": limit,
                "reasons": reasons, "docs": docs}


def _isna(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False
