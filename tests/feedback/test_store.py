"""The feedback store: group commit, torn-tail handling, corruption and the store lock."""
from __future__ import annotations

import json
import threading

import pytest

from lmforge.feedback.store import (FEEDBACK, REQUESTS, STORE_FILES, StoreError, StoreWriter, init_store,
                                   read_jsonl, repair_tail, scan_jsonl)


def test_torn_last_line_is_skipped_on_read_and_truncated_by_the_writer(tmp_path):
    root = init_store(tmp_path / "store")
    p = root / FEEDBACK
    p.write_bytes(b'{"id": "a"}\n{"id": "b"}\n{"id": "c", "rat')
    scan = scan_jsonl(p)
    assert [r["id"] for r in scan.records] == ["a", "b"] and scan.torn_tail
    w = StoreWriter(root)  # reopening repairs the tail before appending
    w.append(FEEDBACK, {"id": "d"}).result(5)
    w.close()
    assert p.read_bytes() == b'{"id": "a"}\n{"id": "b"}\n{"id":"d"}\n'
    assert not scan_jsonl(p).torn_tail


def test_a_complete_json_tail_without_newline_counts_as_torn(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"id": "a"}\n{"id": "b"}')  # never acknowledged: the newline is part of the ack
    assert [r["id"] for r in read_jsonl(p)] == ["a"]
    assert repair_tail(p) == len(b'{"id": "b"}')


def test_corruption_before_the_last_line_raises_naming_file_and_line(tmp_path):
    p = tmp_path / "requests.jsonl"
    p.write_bytes(b'{"id": "a"}\n{"id": \n{"id": "c"}\n')
    with pytest.raises(StoreError, match=r"requests.jsonl:2: not a JSON line"):
        read_jsonl(p)


def test_group_commit_acknowledges_every_line_from_many_threads(tmp_path):
    commits = []
    w = StoreWriter(tmp_path / "store", on_commit=lambda n, s: commits.append(n))
    futures, lock = [], threading.Lock()

    def client(k):
        for i in range(50):
            f = w.append(REQUESTS, {"id": f"{k}-{i}", "text": "x\ny\u00e9"})
            with lock:
                futures.append(f)
    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for f in futures:
        f.result(10)
    w.close()
    ids = [r["id"] for r in read_jsonl(tmp_path / "store" / REQUESTS)]
    assert sorted(ids) == sorted(f"{k}-{i}" for k in range(8) for i in range(50))
    assert sum(commits) == 400 and len(commits) < 400  # batches, i.e. fewer fsyncs than lines
    assert all(json.loads(line) for line in (tmp_path / "store" / REQUESTS).read_text().splitlines())


def test_a_second_writer_on_the_same_store_is_refused(tmp_path):
    w = StoreWriter(tmp_path / "store")
    try:
        with pytest.raises(StoreError, match="in use by another gateway"):
            StoreWriter(tmp_path / "store")
    finally:
        w.close()
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == sorted(STORE_FILES)
