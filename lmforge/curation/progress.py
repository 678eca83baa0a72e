"""Curation's progress line: shards done, input bytes, documents read, rate and ETA, every few seconds.

Curation is the long stage at scale, and datatrove's local executor logs only "N/M tasks
completed" (and that only with several workers), with no rate or time left. The training
stages show a progress bar with their speed; this gives curation the same while its shard
tasks run, locally or as a Slurm array (the stage waits on the shared work folder).

It watches the work folder from the stage's own process: a shard task writes its stats
file (``<work>/<source>/logs/stats/<rank>.json``) when it ends, so the line counts
finished shards, their input bytes (the ETA is remaining bytes at the rate so far) and
the documents their reader read. Shards restored from the shard cache are not counted:
they cost nothing. ``data.progress_s`` sets the interval; 0 turns it off.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)


def _size(path: str) -> int:
    """Bytes of one input file (local or any fsspec URL); 0 when the filesystem cannot say."""
    try:
        from fsspec.core import url_to_fs

        fs, p = url_to_fs(path)
        return int(fs.size(p) or 0)
    except Exception:   # a size is only for the ETA: never fail curation over it
        return 0


def _documents(stats_file: Path) -> int:
    """Documents the shard's reader read (the first step's ``documents`` count)."""
    try:
        first = json.loads(stats_file.read_text())[0]["stats"].get("documents", 0)
    except (OSError, ValueError, IndexError, KeyError, TypeError):
        return 0
    return int(first.get("total", 0) if isinstance(first, dict) else first or 0)


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """``with Progress(work, todo, every_s):`` logs a line every ``every_s`` seconds while shard
    tasks run, and a last one when the block ends."""

    def __init__(self, work: Path, todo: list, every_s: float):
        self.work, self.every_s = Path(work), every_s
        self.shards = [(sh.source, sh.rank, _size(sh.file)) for sh in todo] if every_s > 0 else []
        self.total_bytes = sum(b for _, _, b in self.shards)
        self._stop = threading.Event()
        self._thread = None
        self.t0 = time.monotonic()

    def line(self) -> str:
        done = [(s, r, b) for s, r, b in self.shards if (self.work / s / "logs/stats" / f"{r:05d}.json").exists()]
        docs = sum(_documents(self.work / s / "logs/stats" / f"{r:05d}.json") for s, r, _ in done)
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        n, total = len(done), len(self.shards)
        if self.total_bytes:   # the ETA goes by input bytes; by shard count when sizes are unknown
            part = sum(b for _, _, b in done) / self.total_bytes
            what = f"{part:.0%} of {self.total_bytes / 1e6:,.1f} MB"
            speed = f"{part * self.total_bytes / 1e6 / elapsed:,.2f} MB/s"
        else:
            part = n / max(total, 1)
            what, speed = "input size unknown", f"{n / elapsed:,.3f} shards/s"
        eta = "done" if n == total else f"ETA {_duration((1 - part) * elapsed / part)}" if part > 0 else "ETA unknown"
        return (f"[curate] {n}/{total} shards ({what}), {docs:,} documents read, {_duration(elapsed)} elapsed, "
                f"{speed}, {eta}")

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            log.info(self.line())

    def __enter__(self) -> "Progress":
        if self.shards:
            log.info(f"[curate] {len(self.shards)} shard(s) to run, {self.total_bytes / 1e6:,.1f} MB of input")
            self._thread = threading.Thread(target=self._loop, name="curate-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            log.info(self.line())
