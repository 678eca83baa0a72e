"""Readers for WARC, JSONL and Parquet sources that survive bad input.

Why: datatrove's WarcReader raises EOFError on a truncated gzip shard and fails the whole task,
and its JSONL reader logs bad lines without counting them. ``SafeReader`` reads the same files
with datatrove's own record parsing (``process_record``, ``get_document_from_dict``), but a
corrupt or truncated file is skipped from the point of failure with a warning naming the file,
a bad record is skipped with a warning naming file and record, and both are counted in the
step's stats and logged to ``problems_folder`` so the curate metrics can report them.

``resolve_files`` turns a source ``path`` (local path, glob or fsspec URL) into a root folder
plus a sorted file list, and fails at once, naming the source, when nothing matches.
"""
from __future__ import annotations

import json
import posixpath
import zlib

from datatrove.data import DocumentsPipeline
from datatrove.io import get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.logging import logger

EXTENSIONS = {"warc": (".warc", ".warc.gz", ".arc.gz", ".warc.zst"),
              "jsonl": (".jsonl", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".ndjson"),
              "parquet": (".parquet",)}


class MissingInputError(FileNotFoundError):
    """A source path matches no input files."""


def resolve_files(name: str, path: str, fmt: str) -> tuple[str, list[str]]:
    """(root folder URL, sorted file paths relative to it) for one source."""
    import glob as _glob

    import fsspec

    fs, fspath = fsspec.core.url_to_fs(path)
    if _glob.has_magic(fspath):
        matches = [m for m in fs.glob(fspath) if fs.isfile(m)]
        parts = fspath.split("/")
        root = "/".join(parts[: next(i for i, p in enumerate(parts) if _glob.has_magic(p))]) or "/"
        root = fs._strip_protocol(root) if root else root
    elif fs.isdir(fspath):
        root = fs._strip_protocol(fspath)
        matches = [m for m in fs.find(fspath) if m.endswith(EXTENSIONS[fmt])]
    elif fs.exists(fspath):
        root, matches = posixpath.dirname(fs._strip_protocol(fspath)), [fspath]
    else:
        matches, root = [], ""
    if not matches:
        raise MissingInputError(f"data.sources[{name}].path: {path!r} matches no {fmt} files")
    strip = [fs._strip_protocol(m) for m in matches]
    rel = sorted(posixpath.relpath(m, root) for m in strip)
    return fs.unstrip_protocol(root), rel


class SafeReader(PipelineStep):
    """Read this task's share of ``files`` (files[rank::world_size]) as Documents."""

    type = "📖 - READER"
    name = "read"

    def __init__(self, fmt: str, data_folder: str, files: list[str], source: str,
                 problems_folder: str | None = None, text_key: str = "text", id_key: str = "id"):
        super().__init__()
        from datatrove.pipeline.readers import JsonlReader, ParquetReader, WarcReader

        self.fmt, self.files, self.source = fmt, list(files), source
        self.data_folder = get_datafolder(data_folder)
        self.problems_folder = problems_folder
        kw = dict(text_key=text_key, id_key=id_key, default_metadata={"source": source})
        self.inner = {"warc": lambda: WarcReader(self.data_folder, **kw),
                      "jsonl": lambda: JsonlReader(self.data_folder, **kw),
                      "parquet": lambda: ParquetReader(self.data_folder, read_metadata=True, **kw)}[fmt]()
        self.problems: list[dict] = []

    def _problem(self, filepath: str, kind: str, err: BaseException, record=None) -> None:
        where = self.data_folder.resolve_paths(filepath)
        at = f" record {record}" if record is not None else ""
        msg = f"{type(err).__name__}: {err}"
        logger.warning(f"{where}:{at} {kind.replace('_', ' ')}, skipped ({msg})")
        self.stat_update(f"{kind}s")
        self.problems.append({"source": self.source, "file": where, "kind": kind, "record": record,
                              "error": msg})

    def _finish(self, doc):
        doc.metadata["source"] = self.source
        if isinstance(doc.id, str) and doc.id.startswith("<") and doc.id.endswith(">"):
            doc.id = doc.id[1:-1]  # WARC-Record-ID: <urn:uuid:...>
        doc.id = str(doc.id)
        return doc

    def _read_warc(self, filepath: str):
        from datatrove.pipeline.readers.warc import process_record
        from warcio.archiveiterator import ArchiveIterator

        with self.data_folder.open(filepath, "rb", compression="infer") as f:
            for ri, record in enumerate(ArchiveIterator(f)):
                if record.rec_type not in ("response", "conversion"):
                    continue
                try:
                    data = process_record(record)
                    doc = self.inner.get_document_from_dict(data, filepath, ri) if data else None
                except (EOFError, OSError, zlib.error):
                    raise  # the stream itself is broken (truncated gzip): a file-level problem
                except Exception as e:  # noqa: BLE001 - one bad record must not stop the shard
                    self._problem(filepath, "corrupt_record", e, ri)
                    continue
                if doc is None:
                    self.stat_update("skipped_records")  # not HTML, undecodable or empty
                    continue
                yield doc

    def _read_jsonl(self, filepath: str):
        with self.data_folder.open(filepath, "r", compression="infer") as f:
            for li, line in enumerate(f):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    if not isinstance(data, dict):
                        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
                    doc = self.inner.get_document_from_dict(data, filepath, li)
                except Exception as e:  # noqa: BLE001
                    self._problem(filepath, "corrupt_record", e, li)
                    continue
                if doc is None:
                    self.stat_update("skipped_records")
                    continue
                yield doc

    def read_file(self, filepath: str):
        if self.fmt == "warc":
            return self._read_warc(filepath)
        if self.fmt == "jsonl":
            return self._read_jsonl(filepath)
        return self.inner.read_file(filepath)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        for filepath in self.files[rank::world_size]:
            self.stat_update("input_files")
            n = 0
            try:
                for doc in self.read_file(filepath):
                    n += 1
                    self.stat_update("documents")
                    yield self._finish(doc)
            except Exception as e:  # noqa: BLE001 - truncated gzip (EOFError), bad parquet, ...
                self._problem(filepath, "corrupt_file", e)
                logger.warning(f"{self.data_folder.resolve_paths(filepath)}: kept the {n} documents read "
                               f"before the error")
        if self.problems_folder and self.problems:
            with get_datafolder(self.problems_folder).open(f"{rank:05d}.jsonl", "w") as f:
                f.writelines(json.dumps(p) + "\n" for p in self.problems)
