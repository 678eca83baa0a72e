"""Readers for WARC, JSONL and Parquet sources that survive bad input.

Why: datatrove's WarcReader raises EOFError on a truncated gzip shard and fails the whole task,
its JSONL reader logs bad lines without counting them, and its readers pass a record whose
``text`` is a number, a list or null on to filters that crash on it, and read a file without
a ``text`` column as zero documents without a word. ``SafeReader`` reads the same files with
datatrove's own record parsing (``process_record``, ``get_document_from_dict``), but:

- a corrupt or truncated file is skipped from the point of failure with a warning naming the
  file; a bad record (not JSON, ``text`` not a string, ``id`` neither string nor integer) is
  skipped with a warning naming file and record;
- a file without the ``text`` column (Parquet) or whose records all lack the ``text`` key
  (JSONL) is a ``missing_column`` problem, a file that yields no documents an ``empty_file``;
  the global curate step turns these into errors or warnings (``BadInputError``);
- a document larger than ``max_doc_bytes`` (a WARC record by its Content-Length, before its
  payload is read; JSONL/Parquet by the UTF-8 size of its text) is not passed on: it goes to
  the exclusion writer with reason ``read:too_large``, its text left out (keeping it would
  cost the memory the cap exists to save; id, url and source find it in the input).

All of it is counted in the step's stats and logged to ``problems_folder`` so the curate
metrics can report it.

``resolve_files`` turns a source ``path`` (local path, glob or fsspec URL) into a root folder
plus a sorted file list, and fails at once, naming the source, when nothing matches.
"""
from __future__ import annotations

import json
import posixpath
import zlib

from datatrove.data import Document, DocumentsPipeline
from datatrove.io import get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.logging import logger

from lmforge.curation import dependency_check  # noqa: F401  (datatrove's step checks, without a scan)
from lmforge.stage import InputError

EXTENSIONS = {"warc": (".warc", ".warc.gz", ".arc.gz", ".warc.zst"),
              "jsonl": (".jsonl", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".ndjson"),
              "parquet": (".parquet",)}


class MissingInputError(InputError, FileNotFoundError):
    """A source path matches no input files."""


class BadInputError(InputError):
    """A source yields no documents, or a file lacks the text column."""


class _NoTextKey(KeyError):
    """A record without the text key (counted per file, not warned per record)."""


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
                 problems_folder: str | None = None, text_key: str = "text", id_key: str = "id",
                 max_doc_bytes: int | None = None, exclusion_writer=None):
        super().__init__()
        from datatrove.pipeline.readers import JsonlReader, ParquetReader, WarcReader

        self.fmt, self.files, self.source = fmt, list(files), source
        self.text_key, self.id_key, self.max_doc_bytes = text_key, id_key, max_doc_bytes
        self.data_folder = get_datafolder(data_folder)
        self.problems_folder, self.exclusion_writer = problems_folder, exclusion_writer
        kw = dict(text_key=text_key, id_key=id_key, default_metadata={"source": source})
        self.inner = {"warc": lambda: WarcReader(self.data_folder, **kw),
                      "jsonl": lambda: JsonlReader(self.data_folder, **kw),
                      "parquet": lambda: ParquetReader(self.data_folder, read_metadata=True, **kw)}[fmt]()
        self.problems: list[dict] = []
        self._writer, self._rank = None, 0
        self._file_docs = self._records = self._no_text_key = 0  # per file being read

    def _problem(self, filepath: str, kind: str, err: BaseException | str, record=None,
                 count: int = 1) -> None:
        where = self.data_folder.resolve_paths(filepath)
        at = f" record {record}" if record is not None else ""
        msg = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
        logger.warning(f"{where}:{at} {kind.replace('_', ' ')}, skipped ({msg})")
        self.stat_update(f"{kind}s", value=count)
        self.problems.append({"source": self.source, "file": where, "kind": kind, "record": record,
                              "error": msg})

    def _finish(self, doc):
        doc.metadata["source"] = self.source
        if isinstance(doc.id, str) and doc.id.startswith("<") and doc.id.endswith(">"):
            doc.id = doc.id[1:-1]  # WARC-Record-ID: <urn:uuid:...>
        doc.id = str(doc.id)
        return doc

    def _document(self, data: dict, filepath: str, index: int):
        """datatrove's record -> Document, once the record's types are checked (raises if bad)."""
        if self.text_key not in data:
            raise _NoTextKey(self.text_key)
        text, doc_id = data[self.text_key], data.get(self.id_key)
        if not isinstance(text, str):
            raise TypeError(f"'{self.text_key}' must be a string, got {type(text).__name__}")
        if doc_id is not None and (isinstance(doc_id, bool) or not isinstance(doc_id, (str, int))):
            raise TypeError(f"'{self.id_key}' must be a string or an integer, got {type(doc_id).__name__}")
        return self.inner.get_document_from_dict(data, filepath, index)

    def _too_large(self, doc: Document, size: int, filepath: str) -> bool:
        """Reject (to the exclusion writer, without its text) a document over ``max_doc_bytes``."""
        if self.max_doc_bytes is None or size <= self.max_doc_bytes:
            return False
        logger.warning(f"{self.data_folder.resolve_paths(filepath)}: document {doc.id} is {size:,} bytes "
                       f"> data.max_doc_bytes {self.max_doc_bytes:,}, rejected (read:too_large)")
        self.stat_update("documents", "dropped", "dropped_too_large")
        self._file_docs += 1
        if self._writer is not None:
            doc.text, doc.metadata["filter_reason"] = "", "too_large"
            self._writer.write(self._finish(doc), self._rank)
        return True

    def _parse(self, filepath: str, index: int, parse):
        """One record -> a Document, or None: corrupt (counted), empty (skipped) or too large (rejected)."""
        try:
            data = parse()
            doc = None if data is None else self._document(data, filepath, index)
        except (EOFError, OSError, zlib.error):
            raise  # the stream itself is broken (truncated gzip): a file-level problem
        except _NoTextKey:
            self._no_text_key += 1
            return None
        except Exception as e:  # noqa: BLE001 - one bad record must not stop the shard
            self._problem(filepath, "corrupt_record", e, index)
            return None
        if doc is None:
            self.stat_update("skipped_records")  # WARC: not HTML or undecodable; any: empty text
        elif self._too_large(doc, len(doc.text.encode("utf-8")), filepath):
            return None
        return doc

    def _read_warc(self, filepath: str):
        """FastWARC (lmforge/curation/warc_fast.py): the raw file, FastWARC decompresses it."""
        from lmforge.curation.warc_fast import records

        with self.data_folder.open(filepath, "rb") as f:
            for ri, rid, url, length, parse in records(f):
                head = Document(text="", id=rid or f"{filepath}/{ri}", metadata={"url": url})
                if not self._too_large(head, length or 0, filepath):  # before the payload is read
                    yield self._parse(filepath, ri, parse)

    def _read_jsonl(self, filepath: str):
        def parse(line: str) -> dict:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {type(data).__name__}")
            return data

        with self.data_folder.open(filepath, "r", compression="infer") as f:
            for li, line in enumerate(f):
                if line.strip():
                    self._records += 1
                    yield self._parse(filepath, li, lambda: parse(line))

    def _read_parquet(self, filepath: str):
        import pyarrow.parquet as pq

        with self.data_folder.open(filepath, "rb") as f, pq.ParquetFile(f) as pqf:
            if self.text_key not in pqf.schema_arrow.names:
                self._problem(filepath, "missing_column", f"no '{self.text_key}' column "
                              f"(columns: {pqf.schema_arrow.names})")
                return
            li = 0
            for batch in pqf.iter_batches(batch_size=self.inner.batch_size):
                for row in batch.to_pylist():
                    yield self._parse(filepath, li, lambda: row)
                    li += 1

    def read_file(self, filepath: str):
        """This file's documents; None marks a record that was counted and not passed on."""
        read = {"warc": self._read_warc, "jsonl": self._read_jsonl, "parquet": self._read_parquet}[self.fmt]
        return read(filepath)

    def _read_one(self, filepath: str):
        self.stat_update("input_files")
        self._file_docs = self._records = self._no_text_key = 0
        n_problems = len(self.problems)
        try:
            for doc in self.read_file(filepath):
                if doc is not None:
                    self._file_docs += 1
                    self.stat_update("documents", "forwarded")
                    yield self._finish(doc)
        except Exception as e:  # noqa: BLE001 - truncated gzip (EOFError), bad parquet, ...
            self._problem(filepath, "corrupt_file", e)
            logger.warning(f"{self.data_folder.resolve_paths(filepath)}: kept the {self._file_docs} documents "
                           f"read before the error")
        self._check_file(filepath, n_problems)

    def _check_file(self, filepath: str, n_problems: int) -> None:
        """Records lacking the text key; a file that yielded nothing and said nothing of why."""
        if self._no_text_key and self._no_text_key == self._records:
            self._problem(filepath, "missing_column", f"no '{self.text_key}' key in any of its "
                                                      f"{self._records} records")
        elif self._no_text_key:
            self._problem(filepath, "corrupt_record", f"{self._no_text_key} records without a "
                                                      f"'{self.text_key}' key", count=self._no_text_key)
        elif self._file_docs == 0 and len(self.problems) == n_problems:
            self._problem(filepath, "empty_file", "no documents")

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        import contextlib

        if data:
            yield from data
        self._rank = rank
        with self.exclusion_writer or contextlib.nullcontext() as self._writer:
            for filepath in self.files[rank::world_size]:
                yield from self._read_one(filepath)
        if self.problems_folder and self.problems:
            with get_datafolder(self.problems_folder).open(f"{rank:05d}.jsonl", "w") as f:
                f.writelines(json.dumps(p) + "\n" for p in self.problems)
