"""Streaming the global curate step: dedup decisions from sketches, outputs written in chunks.

Why: the global step used to load every kept and rejected row, text included, into one
process (~21.5 KB per input document). Here nothing holds the corpus:

1. ``decide_duplicates`` merges the sorted per-shard sketch files of each source (ids, URLs,
   text digests, MinHash values; ``lmforge/curation/signatures.py``) in priority order (earlier
   source, then URL, then id) and keeps only the decisions against documents, keyed by their
   place in the shard files. Its memory is the dedup index itself.
2. ``publish_kept`` merges the sorted kept files in the same order, text included, one row
   group per file at a time, and sends each row to ``data/curated`` or, with its reason, to
   ``data/rejected`` (dedup, review label, decontamination). ``ChunkedParquet`` writes rows
   in row groups of ``ROW_GROUP`` rows or ``GROUP_BYTES`` of text into files of
   ``rows_per_shard`` rows, so the curated files hold the same rows in the same order as before.
3. ``publish_task_rejects`` publishes the rejected-document files the shard tasks wrote as
   they are, one file per task and step, with the ``split`` column added and the columns in
   the published order.

``Tally`` counts what passes, for the metrics.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lmforge.curation.dedup import Deduplicator, Sketch
from lmforge.curation.signatures import merged_rows

CURATED_COLUMNS = ("id", "url", "source", "language", "language_score", "text", "split")
REJECTED_COLUMNS = (*CURATED_COLUMNS, "reason", "duplicate_of")
ROW_GROUP = 1024   # rows buffered before a row group is written
# ... or text characters, whichever comes first, so the buffer does not grow with document length.
# Writing a row group costs Arrow about 3x its text, so the cap is kept low; the default
# pipeline's largest curated row group holds 1.4 M characters, and a cap above that keeps its
# files byte-identical.
GROUP_BYTES = 3 * 2**19


def split_of(doc_id: str, val_fraction: float) -> str:
    h = int.from_bytes(hashlib.sha1(doc_id.encode()).digest()[:8], "big") / 2**64
    return "val" if h < val_fraction else "train"


def schema(columns):
    import pyarrow as pa

    types = {"language_score": pa.float64()}
    return pa.schema([(c, types.get(c, pa.string())) for c in columns])


@dataclass
class Tally:
    """Counts of the published documents (what the metrics report)."""
    splits: Counter = field(default_factory=Counter)
    by_source: Counter = field(default_factory=Counter)
    by_language: Counter = field(default_factory=Counter)
    characters: int = 0
    reasons: Counter = field(default_factory=Counter)   # full reason strings of rejected documents
    decont_checked: int = 0
    decont_dropped: list = field(default_factory=list)  # (None, eval set) per dropped document

    @property
    def curated(self) -> int:
        return sum(self.splits.values())

    @property
    def rejected(self) -> int:
        return sum(self.reasons.values())

    def keep(self, row: dict) -> None:
        self.splits[row["split"]] += 1
        self.by_source[row["source"]] += 1
        self.by_language[row["language"]] += 1
        self.characters += len(row["text"])


class ChunkedParquet:
    """Rows -> ``<prefix>-00000.parquet``, ... of at most ``rows_per_file`` rows, written one row
    group of at most ``ROW_GROUP`` rows at a time."""

    def __init__(self, folder: Path, prefix: str, columns, rows_per_file: int, always: bool = False):
        self.folder, self.prefix, self.columns, self.rows_per_file = folder, prefix, columns, rows_per_file
        self.always, self.schema = always, schema(columns)
        self.buffer: list[dict] = []
        self.files = self.in_file = self.buffered_bytes = 0
        self.writer = None

    def add(self, row: dict) -> None:
        self.buffer.append({k: row.get(k) for k in self.columns})
        self.buffered_bytes += len(row.get("text") or "")
        if (len(self.buffer) >= ROW_GROUP or self.buffered_bytes >= GROUP_BYTES
                or self.in_file + len(self.buffer) >= self.rows_per_file):
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            path = self.folder / f"{self.prefix}-{self.files:05d}.parquet"
            self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self.writer.write_table(pa.Table.from_pylist(self.buffer, schema=self.schema))
        self.in_file += len(self.buffer)
        self.buffer, self.buffered_bytes = [], 0
        if self.in_file >= self.rows_per_file:
            self._close_file()

    def _close_file(self) -> None:
        self.writer.close()
        self.writer, self.files, self.in_file = None, self.files + 1, 0

    def close(self) -> None:
        if self.buffer or (self.always and self.files == 0 and self.writer is None):
            self._flush()
        if self.writer is not None:
            self._close_file()


def _rank_files(source_work: Path, folder: str) -> list[Path]:
    d = source_work / folder
    return sorted(d.glob("*.parquet")) if d.is_dir() else []


def _deduplicator(cfg, work: Path):
    """datasketch decides here; datatrove's stages have decided already (decisions.parquet)."""
    if cfg.dedup.engine == "datatrove":
        from lmforge.curation.dedup_datatrove import Decisions

        return Decisions(work)
    return Deduplicator(cfg.dedup)


def decide_duplicates(cfg, work: Path) -> tuple[dict, dict]:
    """``{(source, file index, row index): (id, reason, duplicate_of)}`` for every kept document
    that is a duplicate, and the dedup counters. Reads sketches only."""
    dd, seen, decisions = _deduplicator(cfg, work), set(), {}
    for s in cfg.sources:
        kept = _rank_files(work / s.name, "kept")
        sigs = [work / s.name / "signatures" / f.name for f in kept]
        for (fi, ri), row in merged_rows(sigs, ["id", "url", "exact", "minhash"]):
            doc_id = row["id"]
            if doc_id in seen:
                decisions[(s.name, fi, ri)] = (doc_id, "duplicate_id", doc_id)
                continue
            seen.add(doc_id)
            d = dd.add_sketch(doc_id, Sketch(row["exact"], row["minhash"]))
            if d.reason:
                decisions[(s.name, fi, ri)] = (doc_id, d.reason, d.duplicate_of)
    return decisions, dd.stats


def publish_kept(cfg, work: Path, source: str, decisions: dict, drop: set[str], index,
                 curated: ChunkedParquet, rejected: ChunkedParquet, tally: Tally) -> None:
    """The source's kept documents in priority order: curated, or rejected with a global reason."""
    for (fi, ri), row in merged_rows(_rank_files(work / source, "kept")):
        row["split"] = split_of(row["id"], cfg.val_fraction)
        d = decisions.get((source, fi, ri))
        if d is not None:
            if d[0] != row["id"]:
                raise RuntimeError(f"{work / source}: kept and signature files disagree at {(fi, ri)}")
            row.update(reason=d[1], duplicate_of=d[2])
        elif row["id"] in drop:
            row.update(reason="review", duplicate_of=None)
        elif index is not None:
            tally.decont_checked += 1
            hit = index.match(row["text"])
            if hit:
                row.update(reason=f"decontamination:{hit}", duplicate_of=None)
                tally.decont_dropped.append((None, hit))
        if row.get("reason"):
            tally.reasons[row["reason"]] += 1
            rejected.add(row)
        else:
            tally.keep(row)
            curated.add(row)


def publish_task_rejects(cfg, work: Path, source: str, out: Path, tally: Tally) -> None:
    """Each task's rejected-document file of each step -> ``<source>-<step>-<task>.parquet``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rejected = work / source / "rejected"
    steps = sorted(p.name for p in rejected.iterdir()) if rejected.is_dir() else []
    target = schema(REJECTED_COLUMNS)
    for step in steps:
        for f in _rank_files(rejected, step):
            with pq.ParquetFile(f) as pf, pq.ParquetWriter(out / f"{source}-{step}-{f.stem}.parquet", target,
                                                           compression="zstd") as w:
                for batch in pf.iter_batches(batch_size=ROW_GROUP):
                    ids = batch.column("id").to_pylist()
                    split = pa.array([split_of(i, cfg.val_fraction) for i in ids], pa.string())
                    cols = {n: batch.column(n) for n in batch.schema.names}
                    cols["split"] = split
                    w.write_table(pa.Table.from_arrays([cols[c] for c in REJECTED_COLUMNS], schema=target))
                    tally.reasons.update(batch.column("reason").to_pylist())
