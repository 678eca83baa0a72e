"""The feedback store: append-only JSONL files that survive a crash.

The gateway acknowledges a request or a feedback only once its line is on disk.
One writer thread owns the files: callers hand it records and wait on a future;
the thread writes everything queued so far, flushes and fsyncs each touched file
once, then releases all waiters (group commit), so a hundred concurrent clients
cost one fsync per batch rather than one each.

A crash can leave the last line half-written. Such a line was never acknowledged
(the ack comes after the fsync of the whole line and its newline), so readers
skip a last line that lacks its newline or is not JSON, and the writer truncates
it away before appending again. A bad line anywhere else is corruption and raises
``StoreError`` naming the file and line. An advisory lock on ``requests.jsonl``
keeps a second gateway from interleaving writes into the same store.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lmforge.io import atomic_dir, fsync_dir
from lmforge.stage import InputError

log = logging.getLogger(__name__)

REQUESTS, FEEDBACK, REVIEW_LABELS = "requests.jsonl", "feedback.jsonl", "review_labels.jsonl"
STORE_FILES = (REQUESTS, FEEDBACK, REVIEW_LABELS)


class StoreError(InputError):
    """A store file is corrupt (not a torn tail) or the store is in use."""


@dataclass
class JsonlScan:
    records: list[dict]
    torn_tail: bool  # the last line was torn by a crash and skipped


def scan_jsonl(path: str | os.PathLike) -> JsonlScan:
    """Read every complete record; skip (and report) a torn last line."""
    path = Path(path)
    if not path.exists():
        return JsonlScan([], False)
    data = path.read_bytes()
    lines = data.split(b"\n")
    # After the final newline split() leaves b"": a complete file. Anything else
    # in the last slot is a line whose newline never reached the disk.
    tail = lines.pop()
    torn = bool(tail)
    records = []
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            if n == len(lines) and not tail and _looks_torn(raw):
                torn = True  # e.g. a zero-filled block after a crash: still the tail
                continue
            raise StoreError(f"{path}:{n}: not a JSON line ({e}); the store is corrupt "
                             "beyond a torn last line") from e
        if not isinstance(rec, dict):
            raise StoreError(f"{path}:{n}: expected a JSON object, got {type(rec).__name__}")
        records.append(rec)
    if torn:
        log.warning("%s: skipped a torn last line (%d bytes) left by a crash", path, len(tail))
    return JsonlScan(records, torn)


def _looks_torn(raw: bytes) -> bool:
    return raw.strip(b"\0 \t\r") == b""


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    return scan_jsonl(path).records


def repair_tail(path: Path) -> int:
    """Truncate a torn last line (never acknowledged); return the bytes dropped."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        block = 1 << 16
        pos = size
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            pos = start
        else:
            keep = 0
        if keep < size:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
            log.warning("%s: truncated a torn last line of %d bytes", path, size - keep)
        return size - keep


def snapshot_store(live: str | os.PathLike, dest: str | os.PathLike) -> dict[str, int]:
    """Copy the acknowledged records of a live store into ``dest``, whole or not at all.

    The gateway keeps appending to ``live`` while this runs, so each file is cut at
    its last complete line (a torn or still-being-written tail was never
    acknowledged); every line is checked to be a JSON object first, so corruption
    stops here with the file and line named. A missing live store (a fresh clone,
    no gateway run yet) gives the empty store. Returns records per file.
    """
    live = Path(live)
    counts = {}
    with atomic_dir(dest) as tmp:
        for name in STORE_FILES:
            src = live / name
            data = src.read_bytes() if src.exists() else b""
            data = data[: data.rfind(b"\n") + 1]
            (tmp / name).write_bytes(data)
            counts[name] = len(scan_jsonl(tmp / name).records)
    return counts


def init_store(root: str | os.PathLike) -> Path:
    """Create the store folder with its three (possibly empty) files."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    created = False
    for name in STORE_FILES:
        if not (root / name).exists():
            (root / name).touch()
            created = True
    if created:  # the new names must survive a crash too, not just the lines
        fsync_dir(root)
        fsync_dir(root.parent)
    return root


class StoreWriter:
    """Single writer thread with group commit over the store's files."""

    def __init__(self, root: str | os.PathLike,
                 on_commit: Callable[[int, float], None] | None = None):
        self.root = init_store(root)
        self._on_commit = on_commit
        self._lock_file = open(self.root / REQUESTS, "ab")
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise StoreError(f"{self.root}: the store is in use by another gateway process")
        self._files = {}
        for name in STORE_FILES:
            repair_tail(self.root / name)
            self._files[name] = open(self.root / name, "ab", buffering=0)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def append(self, name: str, record: dict) -> concurrent.futures.Future:
        """Queue ``record`` for ``name``; the future resolves once it is fsynced."""
        if name not in self._files:
            raise StoreError(f"unknown store file {name!r}; known: {list(STORE_FILES)}")
        if self._closed:
            raise StoreError(f"{self.root}: store writer is closed")
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
                + "\n").encode("utf-8")
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((name, line, fut))
        return fut

    async def append_async(self, name: str, record: dict) -> None:
        await asyncio.wrap_future(self.append(name, record))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while True:  # drain what queued up meanwhile: one fsync for all of it
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list) -> None:
        t0 = time.perf_counter()
        by_file: dict[str, list] = {}
        for name, line, fut in batch:
            by_file.setdefault(name, []).append((line, fut))
        for name, items in by_file.items():
            f = self._files[name]
            try:
                # One write() per file per batch: lines land whole and in order.
                view = memoryview(b"".join(line for line, _ in items))
                while view:
                    view = view[os.write(f.fileno(), view):]
                os.fsync(f.fileno())
            except BaseException as e:  # noqa: BLE001 - report to every waiter
                for _, fut in items:
                    fut.set_exception(StoreError(f"{self.root / name}: write failed: {e}"))
                continue
            for _, fut in items:
                fut.set_result(None)
        if self._on_commit is not None:
            self._on_commit(len(batch), time.perf_counter() - t0)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=30)
        for f in self._files.values():
            f.close()
        self._lock_file.close()
