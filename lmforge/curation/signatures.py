"""Per-shard outputs the global curate step can stream: dedup sketches, and rows in priority order.

Why: the global step (``finalize``) must decide duplicates across every shard without holding
the corpus. So each shard task writes, beside its kept documents, one small row per kept
document (id, url, normalised-text digest, MinHash values: ``SignatureWriter``), and then
sorts both files by the dedup priority within a source, ``(url or "", id)``
(``sort_task_outputs``). The global step merges the sorted files of a source (``merged_rows``)
and sees every document in the same order a global sort would give, one small row group per
file in memory, held in Arrow (UTF-8) and turned into a Python row one row at a time: an
external merge sort whose runs are the shards.
"""
from __future__ import annotations

import heapq
from pathlib import Path
from typing import Iterator

from datatrove.pipeline.writers import ParquetWriter

from lmforge.curation import dependency_check  # noqa: F401  (datatrove's step checks, without a scan)
from lmforge.curation.curate_config import DedupConfig

# Rows per row group of the sorted per-shard files: what the merge holds per open file. Kept
# files' row groups also end before their texts pass KEPT_GROUP_BYTES, so the merge's memory
# does not grow with document length (one longer document is a row group of its own).
KEPT_ROW_GROUP, SIGNATURE_ROW_GROUP, KEPT_GROUP_BYTES = 64, 512, 64 * 1024


def signature_schema():
    import pyarrow as pa

    return pa.schema([("id", pa.string()), ("url", pa.string()), ("exact", pa.binary()),
                      ("minhash", pa.binary())])


class SignatureWriter(ParquetWriter):
    """Writes each document's dedup sketch (``Deduplicator.sketch``) and passes the document on.

    With ``dedup.engine: datatrove`` the sketch columns stay empty: datatrove's own signature
    stage hashes the kept documents, and finalize needs only the ids and the order."""

    name = "signatures"

    def __init__(self, output_folder, params: DedupConfig):
        super().__init__(output_folder, output_filename="${rank}.parquet", schema=signature_schema(),
                         compression="zstd", max_file_size=-1, use_content_defined_chunking=False)
        self.params, self._dedup = params, None

    def _default_adapter(self, document) -> dict:
        if self.params.engine == "datatrove":
            return {"id": document.id, "url": document.metadata.get("url"), "exact": None, "minhash": None}
        if self._dedup is None:
            from lmforge.curation.dedup import Deduplicator

            self._dedup = Deduplicator(self.params)
        sk = self._dedup.sketch(document.text)
        return {"id": document.id, "url": document.metadata.get("url"), "exact": sk.exact,
                "minhash": None if sk.minhash is None else sk.minhash.tobytes()}


def _groups(t, row_group: int, max_bytes: int | None) -> list[tuple[int, int]]:
    """(offset, length) of row groups of at most ``row_group`` rows and, past their first row,
    ``max_bytes`` of text."""
    import pyarrow.compute as pc

    if max_bytes is None or "text" not in t.column_names:
        return [(i, min(row_group, t.num_rows - i)) for i in range(0, t.num_rows, row_group)]
    sizes = pc.fill_null(pc.binary_length(t["text"]), 0).to_pylist()
    out, start, used = [], 0, 0
    for i, n in enumerate(sizes):
        if i > start and (i - start >= row_group or used + n > max_bytes):
            out.append((start, i - start))
            start, used = i, 0
        used += n
    if start < len(sizes):
        out.append((start, len(sizes) - start))
    return out


def sort_rows_file(path: Path, row_group: int, max_bytes: int | None = None) -> None:
    """Sort one Parquet file by ``(url or "", id)`` (stable) in place, with small row groups."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not path.exists():
        return
    t = pq.read_table(path)
    key = pa.table({"u": pc.fill_null(t["url"], ""), "i": t["id"]})
    t = t.take(pc.sort_indices(key, sort_keys=[("u", "ascending"), ("i", "ascending")]))
    tmp = path.with_name(path.name + ".sorting")
    with pq.ParquetWriter(tmp, t.schema, compression="zstd") as w:
        for start, n in _groups(t, row_group, max_bytes) or [(0, 0)]:
            w.write_table(t.slice(start, n), row_group_size=max(n, 1))
    tmp.replace(path)


def sort_task_outputs(source_work: Path, rank: int) -> None:
    """Sort one task's kept documents and signatures (row-aligned before and after)."""
    name = f"{rank:05d}.parquet"
    sort_rows_file(source_work / "kept" / name, KEPT_ROW_GROUP, KEPT_GROUP_BYTES)
    sort_rows_file(source_work / "signatures" / name, SIGNATURE_ROW_GROUP)


def _file_rows(path: Path, columns: list[str] | None, file_index: int) -> Iterator[tuple]:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as pf:
        row = 0
        for rg in range(pf.num_row_groups):
            t = pf.read_row_group(rg, columns=columns, use_threads=False)
            names = t.column_names
            # small columns as Python lists; the text stays in Arrow until its row's turn
            cols = [(t.column(c).combine_chunks(), True) if c == "text" else (t.column(c).to_pylist(), False)
                    for c in names]
            for i in range(t.num_rows):
                r = {c: (v[i].as_py() if lazy else v[i]) for c, (v, lazy) in zip(names, cols)}
                yield (r["url"] or "", r["id"], file_index, row, r)
                row += 1


def merged_rows(files: list[Path], columns: list[str] | None = None) -> Iterator[tuple[tuple[int, int], dict]]:
    """Rows of sorted files in one ``(url or "", id)`` order, ties in file order, as
    ``((file index, row index), row)``; one row group per file in memory."""
    its = [_file_rows(f, columns, i) for i, f in enumerate(files)]
    for _, _, fi, ri, row in heapq.merge(*its, key=lambda t: (t[0], t[1], t[2])):
        yield (fi, ri), row
