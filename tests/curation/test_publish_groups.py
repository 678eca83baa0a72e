"""What the global curate step holds per open file and per output buffer is bounded in bytes, not
only in rows, so its memory does not grow with document length (issue 22, item 13)."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from lmforge.curation import publish
from lmforge.curation.signatures import KEPT_GROUP_BYTES, KEPT_ROW_GROUP, merged_rows, sort_rows_file


def _kept(path, sizes):
    rows = [{"id": f"d{i:03d}", "url": f"https://x.example/{(i * 7) % len(sizes):03d}", "text": "w" * n}
            for i, n in enumerate(sizes)]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return rows


def test_sorted_kept_files_have_row_groups_bounded_in_text_bytes(tmp_path):
    sizes = [KEPT_GROUP_BYTES // 3] * 30 + [10] * 150 + [KEPT_GROUP_BYTES * 2]  # long, short, one huge
    rows = _kept(tmp_path / "00000.parquet", sizes)
    sort_rows_file(tmp_path / "00000.parquet", KEPT_ROW_GROUP, KEPT_GROUP_BYTES)
    with pq.ParquetFile(tmp_path / "00000.parquet") as pf:
        groups = [pf.read_row_group(i, columns=["text"]).column("text").to_pylist() for i in range(pf.num_row_groups)]
    assert sum(map(len, groups)) == len(rows)
    for g in groups:
        assert len(g) <= KEPT_ROW_GROUP
        assert len(g) == 1 or sum(map(len, g)) <= KEPT_GROUP_BYTES
    got = [r["id"] for _, r in merged_rows([tmp_path / "00000.parquet"])]
    assert got == [r["id"] for r in sorted(rows, key=lambda r: (r["url"], r["id"]))]


def test_output_buffer_flushes_on_text_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(publish, "GROUP_BYTES", 1000)
    out = publish.ChunkedParquet(tmp_path, "c", publish.CURATED_COLUMNS, rows_per_file=10_000)
    for i in range(20):
        out.add({"id": str(i), "text": "x" * 300})
        assert out.buffered_bytes < 1000
    out.close()
    with pq.ParquetFile(tmp_path / "c-00000.parquet") as pf:
        assert pf.metadata.num_rows == 20 and pf.num_row_groups == 5
