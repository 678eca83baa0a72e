"""The work folder's one Parquet format: what every curation step writes and finalize reads.

Kept documents and every rejection share a fixed schema (``WORK_COLUMNS``), so the global
step can merge sources, shards and cached results without guessing columns. As an exclusion
writer, ``WorkWriter`` stamps ``reason = "<step>:<filter reason>"``.
"""
from __future__ import annotations

from datatrove.pipeline.writers import ParquetWriter

from lmforge.curation import dependency_check  # noqa: F401  (datatrove's step checks, without a scan)

WORK_COLUMNS = (("id", "string"), ("url", "string"), ("source", "string"), ("language", "string"),
                ("language_score", "float64"), ("text", "string"), ("reason", "string"),
                ("duplicate_of", "string"))


def work_schema():
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, t)()) for name, t in WORK_COLUMNS])


def doc_row(doc) -> dict:
    md = doc.metadata
    return {"id": doc.id, "url": md.get("url"), "source": md.get("source"), "language": md.get("language"),
            "language_score": md.get("language_score"), "text": doc.text,
            "reason": None, "duplicate_of": None}


class WorkWriter(ParquetWriter):
    """Parquet writer with the fixed work schema; ``step`` set => rows are rejections."""

    name = "work-parquet"

    def __init__(self, output_folder, step: str | None = None):
        super().__init__(output_folder, output_filename="${rank}.parquet", schema=work_schema(),
                         compression="zstd", max_file_size=-1, use_content_defined_chunking=False)
        self.step = step

    def _default_adapter(self, document) -> dict:
        row = doc_row(document)
        if self.step:
            why = document.metadata.get("filter_reason")
            row["reason"] = f"{self.step}:{why}" if why else self.step
        return row
