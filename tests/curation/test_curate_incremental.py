"""Incremental shards: a shard added to a 10-shard source is the only one filtered again, its
documents are deduplicated against the existing corpus, and the result equals a run from scratch."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from lmforge.testing.curate import jsonl_docs


def _digests(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def _write_shard(path, docs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))


@pytest.fixture(scope="module")
def runs(cfg, tmp_path_factory):
    from lmforge.curation.curate import CurateOutputs, run_curate

    tmp = tmp_path_factory.mktemp("incremental")
    docs = jsonl_docs()
    for i in range(10):
        _write_shard(tmp / "in" / f"rst-{i:05d}.jsonl", docs[i * 4:(i + 1) * 4])
    def curate(name: str, cache: str):
        src = dataclasses.replace(cfg.sources[2], name="rst", path=str(tmp / "in" / "rst-*.jsonl"))
        c = dataclasses.replace(cfg, sources=[src], workers=2, review_labels=None, cache_dir=str(tmp / cache))
        out = CurateOutputs(tmp / name / "curated", tmp / name / "rejected", tmp / name / "curate.json",
                            tmp / name / "funnel.csv")
        return run_curate(c, out), out

    ten = curate("ten", "cache")
    import pyarrow.parquet as pq

    curated = set(pq.read_table(ten[1].curated, columns=["id"]).column("id").to_pylist())
    first = next(d for d in docs[:40] if d["id"] in curated)   # the new shard copies it, exactly and nearly
    lines = first["text"].splitlines()
    near = "\n".join(lines[:-1] + ["This page was mirrored from the original site."])
    # the copies' URLs rank after the original's: dedup priority is (source, URL, id)
    new = docs[40:44] + [{**first, "id": first["id"] + "/copy", "url": first["url"] + "?copy"},
                         {**first, "id": first["id"] + "/mirror", "url": first["url"] + "?mirror", "text": near}]
    _write_shard(tmp / "in" / "rst-00010.jsonl", new)
    added = curate("added", "cache")
    scratch = curate("scratch", "fresh-cache")
    return dict(ten=ten, added=added, scratch=scratch, first=first, tmp=tmp)


def test_only_the_added_shard_is_processed(runs):
    ten, added, scratch = (runs[k][0]["shards"] for k in ("ten", "added", "scratch"))
    assert len(ten["processed"]) == 10 and ten["cached"] == []
    assert [p.rsplit("/", 1)[-1] for p in added["processed"]] == ["rst-00010.jsonl"]
    assert sorted(added["cached"]) == sorted(ten["processed"])
    assert len(scratch["processed"]) == 11 and scratch["cached"] == []


def test_the_result_equals_a_run_from_scratch(runs):
    (m, out), (m0, out0) = runs["added"], runs["scratch"]
    assert _digests(out.curated) == _digests(out0.curated)
    assert _digests(out.rejected) == _digests(out0.rejected)
    assert out.metrics.read_text() == out0.metrics.read_text()
    assert m["input"]["files"] == 11


def test_new_copies_of_curated_documents_are_rejected_and_the_earlier_document_stays(runs):
    import pyarrow.parquet as pq

    (_, out), first = runs["added"], runs["first"]
    rej = {r["id"]: r for r in pq.read_table(out.rejected).to_pylist()}
    assert (rej[first["id"] + "/copy"]["reason"], rej[first["id"] + "/copy"]["duplicate_of"]) == \
        ("exact_dedup", first["id"])
    assert (rej[first["id"] + "/mirror"]["reason"], rej[first["id"] + "/mirror"]["duplicate_of"]) == \
        ("near_dedup", first["id"])
    curated_ten = set(pq.read_table(runs["ten"][1].curated, columns=["id"]).column("id").to_pylist())
    curated_added = set(pq.read_table(out.curated, columns=["id"]).column("id").to_pylist())
    assert first["id"] in curated_ten and curated_ten <= curated_added


def test_the_cache_key_follows_content_and_settings_not_the_source_path(cfg, tmp_path):
    from datatrove.io import get_datafolder

    from lmforge.curation.shard_cache import ShardCache

    (tmp_path / "a.jsonl").write_text('{"id": "x", "text": "one"}\n')
    folder, cache = get_datafolder(str(tmp_path)), ShardCache(tmp_path / "cache", cfg)
    src = cfg.sources[2]
    key = cache.key(cfg.for_source(src), folder, "a.jsonl")
    moved = dataclasses.replace(src, path="elsewhere/*.jsonl", weight=2.0)
    assert cache.key(cfg.for_source(moved), folder, "a.jsonl") == key
    stricter = dataclasses.replace(src, filters={**src.filters, "c4_quality": {"min_num_sentences": 6}})
    assert cache.key(cfg.for_source(stricter), folder, "a.jsonl") != key
    (tmp_path / "a.jsonl").write_text('{"id": "x", "text": "two"}\n')
    assert cache.key(cfg.for_source(src), folder, "a.jsonl") != key


@pytest.mark.parametrize("why,transient", [("timeout", True), ("broken_process", True), ("empty", False)])
def test_a_shard_with_an_extraction_timeout_is_not_cached(tmp_path, why, transient):
    from datatrove.data import Document

    from lmforge.curation.work import WorkWriter
    from lmforge.curation.shard_cache import transient_drops

    with WorkWriter(str(tmp_path / "rejected" / "extract"), step="extract") as w:
        w.write(Document(text="<html>", id="p", metadata={"url": "https://x.org/p", "filter_reason": why}), 3)
    assert transient_drops(tmp_path, 3) is transient and transient_drops(tmp_path, 4) is False
