"""Per-shard cache of the curate filter results: adding a shard reprocesses only that shard.

Why: extraction and filtering cost ~30 CPU-ms a document and are a pure function of one input
file, its source's settings and the code, while only dedup and the publishing of outputs are
global. So a shard task's outputs (kept documents, dedup signatures, rejected documents per
step, reader problems, step counters) are stored under a key:

    sha256 of (input file content, its path inside the source, source format and filter
    settings, PII and size cap, the dedup signature settings, the per-shard code and the
    versions of the libraries it calls)

and a later run restores them instead of running the task. The global step always runs over
every shard, so the result equals a run from scratch.

Where, for DVC: the cache (``data.cache_dir``, default ``data/.curate_cache``, gitignored) is
deliberately *not* a stage output. Outputs are deleted before a stage runs unless
``persist: true``, and a persisted output is still hashed into ``dvc.lock``, which would make
the lock depend on what earlier runs left behind. A memo keyed by content changes time, never
results (like ccache beside make, or DVC's own run-cache), so it stays outside the graph;
deleting it at any time is safe. Entries of shards no longer read are kept until deleted.
A shard where a page's extraction timed out (or its extraction process broke) is not stored:
that outcome depends on the machine's load at the time, and the next run tries it again.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

from lmforge.io import stream_sha256

# Modules whose code decides a shard task's outputs; a change to any of them invalidates the cache.
_CODE = ("work", "extract", "filters/url", "filters/language", "filters/quality", "filters/gopher_quality",
         "filters/repetition", "redact", "words", "url_lists", "readers", "warc_fast", "curate", "curate_config",
         "dedup", "signatures", "shard_cache")
_LIBS = ("datatrove", "trafilatura", "resiliparse", "fastwarc", "py3langid", "datasketch", "xxhash", "pyarrow", "spacy")
FORMAT = 1


def code_fingerprint() -> str:
    import importlib.metadata as md

    h = hashlib.sha256()
    here = Path(__file__).parent
    for name in _CODE:
        h.update((here / f"{name}.py").read_bytes())
    for lib in _LIBS:
        try:
            h.update(f"{lib}={md.version(lib)};".encode())
        except md.PackageNotFoundError:
            h.update(f"{lib}=none;".encode())
    return h.hexdigest()


def _content_sha256(data_folder, relpath: str) -> str:
    with data_folder.open(relpath, "rb") as f:
        return stream_sha256(f)


def _task_files(source_work: Path, rank: int) -> dict[str, Path]:
    """A task's outputs in the work folder, by their name in a cache entry."""
    n = f"{rank:05d}"
    files = {"kept.parquet": source_work / "kept" / f"{n}.parquet",
             "signatures.parquet": source_work / "signatures" / f"{n}.parquet",
             "problems.jsonl": source_work / "problems" / f"{n}.jsonl",
             "stats.json": source_work / "logs" / "stats" / f"{n}.json"}
    rejected = source_work / "rejected"
    for step in sorted(p.name for p in rejected.iterdir()) if rejected.is_dir() else ():
        files[f"rejected-{step}.parquet"] = rejected / step / f"{n}.parquet"
    return files


TRANSIENT = ("extract:timeout", "extract:broken_process")


def transient_drops(source_work: Path, rank: int) -> bool:
    """Whether this task dropped a page for a reason that may not recur (extraction timeout)."""
    import pyarrow.parquet as pq

    f = source_work / "rejected" / "extract" / f"{rank:05d}.parquet"
    return f.exists() and any(r in TRANSIENT for r in pq.read_table(f, columns=["reason"]).column("reason").to_pylist())


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another file system, or no hard links
        shutil.copyfile(src, dst)


class ShardCache:
    """Store and restore shard task outputs under ``root/<source>/<key>/``."""

    def __init__(self, root: str | os.PathLike, cfg):
        self.root, self.cfg = Path(root), cfg
        self._code = code_fingerprint()

    def key(self, settings, data_folder, relpath: str) -> str:
        c, src = self.cfg, settings.source
        filters = {f.name: dataclasses.asdict(getattr(settings, f.name))
                   for f in dataclasses.fields(settings) if f.name != "source"}
        d = c.dedup
        doc = {"format": FORMAT, "code": self._code, "file": relpath, "content": _content_sha256(data_folder, relpath),
               "source": src.name, "source_format": src.format, "filters": filters,
               "pii": dataclasses.asdict(c.pii), "max_doc_bytes": c.max_doc_bytes,
               "signatures": [d.engine, d.exact, d.near, d.shingle_size, d.num_perm, d.seed]}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def _entry(self, source: str, key: str) -> Path:
        return self.root / source / key

    def restore(self, source: str, key: str, source_work: Path, rank: int, file_url: str) -> bool:
        """Put a cached task's outputs into the work folder as task ``rank``; False on a miss."""
        entry = self._entry(source, key)
        if not (entry / "stats.json").is_file():
            return False
        n = f"{rank:05d}"
        for f in sorted(entry.iterdir()):
            if f.name.startswith("rejected-"):
                _link(f, source_work / "rejected" / f.name[len("rejected-"):-len(".parquet")] / f"{n}.parquet")
            elif f.name == "problems.jsonl":  # name the file where this checkout reads it
                dst = source_work / "problems" / f"{n}.jsonl"
                dst.parent.mkdir(parents=True, exist_ok=True)
                rows = [{**json.loads(line), "file": file_url} for line in f.read_text().splitlines() if line]
                dst.write_text("".join(json.dumps(r) + "\n" for r in rows))
            else:
                _link(f, _task_files(source_work, rank)[f.name])
        return True

    def store(self, source: str, key: str, source_work: Path, rank: int) -> None:
        """Save a finished task's outputs; written to a temporary folder, then renamed."""
        entry = self._entry(source, key)
        if entry.exists():
            return
        tmp = entry.with_name(f".{key}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for name, path in _task_files(source_work, rank).items():
            if path.is_file():
                _link(path, tmp / name)
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            tmp.rename(entry)
        except OSError:  # the same shard was stored meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
