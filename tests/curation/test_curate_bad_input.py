"""Bad input: truncated/corrupt shards and records are counted and skipped with a warning naming
the file; a missing input path or an invalid parameter fails at once with a clear message."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lmforge.testing.curate import REPO, SAMPLE, fortune_docs, read_warc_pages, truncated, write_warc


@pytest.fixture()
def warnings_log():
    from datatrove.utils.logging import logger

    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING")
    yield messages
    logger.remove(sink)


def read_all(reader) -> list:
    return list(reader.run(None, 0, 1))


def test_truncated_warc_is_counted_and_skipped(tmp_path, warnings_log):
    from lmforge.curation.readers import SafeReader

    (tmp_path / "ok.warc.gz").write_bytes((SAMPLE / "handbook-00001.warc.gz").read_bytes())
    (tmp_path / "cut.warc.gz").write_bytes(truncated((SAMPLE / "handbook-00000.warc.gz").read_bytes(), 0.3))
    r = SafeReader("warc", str(tmp_path), ["cut.warc.gz", "ok.warc.gz"], "web", str(tmp_path / "problems"))
    docs = read_all(r)
    stats = r.stats.stats
    assert stats["corrupt_files"].total == 1 and stats["input_files"].total == 2
    assert "corrupt_records" not in stats  # a truncated stream counts once, as a file
    n_ok = sum(1 for d in docs if d.metadata["file_path"].endswith("ok.warc.gz"))
    assert n_ok == len(read_warc_pages("handbook-00001.warc.gz")) and len(docs) > n_ok  # everything before the cut is kept, the rest skipped
    assert any("cut.warc.gz" in m and "corrupt file" in m for m in warnings_log)
    problems = [json.loads(line) for line in (tmp_path / "problems" / "00000.jsonl").read_text().splitlines()]
    assert len(problems) == 1 and problems[0]["file"].endswith("cut.warc.gz")
    assert problems[0]["error"].startswith("EOFError")
    assert all(d.id.startswith("urn:uuid:") and d.metadata["source"] == "web" for d in docs)


def test_corrupt_jsonl_record_is_counted_and_skipped(tmp_path, warnings_log):
    from lmforge.curation.readers import SafeReader

    lines = (SAMPLE / "pydoc-rst-00000.jsonl").read_text().splitlines()[:5]
    lines.insert(2, '{"id": "broken", "text": "unterminated')
    (tmp_path / "docs.jsonl").write_text("\n".join(lines) + "\n")
    r = SafeReader("jsonl", str(tmp_path), ["docs.jsonl"], "rst")
    docs = read_all(r)
    assert len(docs) == 5 and r.stats.stats["corrupt_records"].total == 1
    assert any("docs.jsonl: record 2 corrupt record" in m for m in warnings_log)


def test_corrupt_parquet_file_is_counted_and_skipped(tmp_path, warnings_log):
    from lmforge.curation.readers import SafeReader

    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    (tmp_path / "good.parquet").write_bytes((SAMPLE / "fortunes-00000.parquet").read_bytes())
    r = SafeReader("parquet", str(tmp_path), ["bad.parquet", "good.parquet"], "f")
    assert len(read_all(r)) == 60 and r.stats.stats["corrupt_files"].total == 1
    assert any("bad.parquet" in m for m in warnings_log)


def test_missing_path_fails_at_once_naming_the_source(cfg):
    import dataclasses

    from lmforge.curation.curate import plan
    from lmforge.curation.readers import MissingInputError

    src = dataclasses.replace(cfg.sources[0], path="data/sample/crawl/nothing-*.warc.gz")
    with pytest.raises(MissingInputError, match=r"data.sources\[handbook\].path: 'data/sample/crawl/nothing-"):
        plan(dataclasses.replace(cfg, sources=[src, *cfg.sources[1:]]))


@pytest.mark.parametrize("patch,message", [
    ({"workers": 0}, "data.workers must be >= 1"),
    ({"language": {"allowed": ["english"]}}, "not ISO 639-1 codes: ['english']"),
    ({"sources": [{"name": "x", "path": "a", "format": "csv"}]}, "format: expected one of ['warc', 'jsonl', 'parquet']"),
    ({"sources": [{"name": "x", "path": "a", "format": "warc", "filters": {"c4": {}}}]}, "unknown section(s) ['c4']"),
    ({"sources": [{"name": "x", "path": "a", "format": "warc", "filters": {"c4_quality": {"curly": 1}}}]},
     "data.sources[x].filters.c4_quality: unknown key(s) ['curly']"),
    ({"filters": {"gopher_quality": {"min_doc_words": "many"}}}, "data.filters.gopher_quality.min_doc_words"),
    ({"dedup": {"threshold": 1.5}}, "data.dedup.threshold must be in (0, 1]"),
    ({"max_doc_bytes": 0}, "data.max_doc_bytes must be >= 1 (or null for no cap), got 0"),
    ({"extract": {"engine": "resiliparse", "skip_elements": ["nav", "div[[x"]}},
     "data.extract.skip_elements: 'div[[x' is not a CSS selector"),
    ({"extract": {"skip_elements": "nav"}}, "data.extract.skip_elements: expected a list, got 'nav'"),
])
def test_invalid_params_fail_naming_the_key(params, patch, message):
    from lmforge.config import ParamsError, section
    from lmforge.curation.curate_config import DataConfig

    with pytest.raises(ParamsError) as e:
        section(DataConfig, "data", params={"data": {**params["data"], **patch}})
    assert message in str(e.value)


def test_stage_exits_with_message_on_missing_input(tmp_path, params):
    import yaml

    data = {**params["data"], "sources": [{"name": "mine", "path": str(tmp_path / "crawl/*.warc.gz"),
                                           "format": "warc"}]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": data}))
    env = {**os.environ, "LMFORGE_PARAMS": str(tmp_path / "params.yaml")}
    p = subprocess.run([sys.executable, "-m", "stages.curate"], cwd=REPO, env=env, capture_output=True, text=True)
    assert p.returncode == 2
    assert "data.sources[mine].path" in p.stderr and "matches no warc files" in p.stderr


def test_records_of_the_wrong_type_are_counted_and_skipped(tmp_path, warnings_log):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lmforge.curation.readers import SafeReader

    good = (SAMPLE / "pydoc-rst-00000.jsonl").read_text().splitlines()[:3]
    bad = [{"id": "int", "text": 12345}, {"id": "null", "text": None}, {"id": "list", "text": ["a", "b"]},
           {"id": "dict", "text": {"a": 1}}, {"id": 1.5, "text": "a float id"}, {"id": ["x"], "text": "a list id"}]
    ok_int_id = {"id": 7, "text": "an integer id is fine"}
    (tmp_path / "docs.jsonl").write_text("\n".join(good + [json.dumps(b) for b in bad] + [json.dumps(ok_int_id)]))
    rows = fortune_docs()[:3] + [{**fortune_docs()[3], "text": None}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "f.parquet")
    r = SafeReader("jsonl", str(tmp_path), ["docs.jsonl"], "rst", str(tmp_path / "problems"))
    docs = read_all(r)
    assert [d.id for d in docs][-1] == "7" and len(docs) == 4
    assert all(isinstance(d.text, str) for d in docs) and r.stats.stats["corrupt_records"].total == 6
    assert any("docs.jsonl: record 3 corrupt record" in m and "'text' must be a string, got int" in m
               for m in warnings_log)
    assert any("record 8 corrupt record" in m and "'id' must be a string or an integer, got list" in m
               for m in warnings_log)
    p = SafeReader("parquet", str(tmp_path), ["f.parquet"], "f")
    assert len(read_all(p)) == 3 and p.stats.stats["corrupt_records"].total == 1


def _problems(folder) -> list[dict]:
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.read_text().splitlines()]


def test_a_missing_text_column_or_key_is_reported_per_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lmforge.curation.readers import SafeReader

    pq.write_table(pa.Table.from_pylist([{"id": "a", "body": "some words"}]), tmp_path / "body.parquet")
    (tmp_path / "body.jsonl").write_text('{"id": "a", "body": "x"}\n{"id": "b", "body": "y"}\n')
    lines = (SAMPLE / "pydoc-rst-00000.jsonl").read_text().splitlines()[:2]
    (tmp_path / "some.jsonl").write_text("\n".join(lines + ['{"id": "c", "body": "z"}']) + "\n")
    (tmp_path / "empty.jsonl").write_text("")
    for fmt, files in (("parquet", ["body.parquet"]), ("jsonl", ["body.jsonl", "some.jsonl", "empty.jsonl"])):
        r = SafeReader(fmt, str(tmp_path), files, "s", str(tmp_path / fmt))
        docs = read_all(r)
        assert len(docs) == (2 if fmt == "jsonl" else 0)
    kinds = {p["file"].split("/")[-1]: (p["kind"], p["error"]) for p in _problems(tmp_path / "parquet")
             + _problems(tmp_path / "jsonl")}
    assert kinds["body.parquet"][0] == "missing_column" and "no 'text' column" in kinds["body.parquet"][1]
    assert kinds["body.jsonl"] == ("missing_column", "no 'text' key in any of its 2 records")
    assert kinds["some.jsonl"] == ("corrupt_record", "1 records without a 'text' key")
    assert kinds["empty.jsonl"] == ("empty_file", "no documents")
    assert r.stats.stats["corrupt_records"].total == 1 and r.stats.stats["empty_files"].total == 1


def test_too_large_documents_are_rejected_before_their_payload_is_read(tmp_path, pages, monkeypatch):
    import pyarrow.parquet as pq
    from lmforge.curation import warc_fast
    from lmforge.curation.work import WorkWriter
    from lmforge.curation.readers import SafeReader

    urls = sorted(pages, key=lambda u: len(pages[u]))
    small, big = urls[:3], urls[-2:]
    cap = (len(pages[small[-1]]) + len(pages[big[0]])) // 2
    assert len(pages[small[-1]]) + 1000 < cap < len(pages[big[0]])
    write_warc(tmp_path / "in" / "w.warc.gz", [(u, pages[u]) for u in small + big])
    long_text = "A sentence of plain words. " * (cap // 27 + 10)
    (tmp_path / "in" / "d.jsonl").write_text(json.dumps({"id": "long", "text": long_text}) + "\n"
                                             + json.dumps({"id": "short", "text": "Short."}) + "\n")
    seen = []
    monkeypatch.setattr(warc_fast, "_document", lambda rec, ri, real=warc_fast._document: (
        seen.append(rec.headers.get("WARC-Target-URI")), real(rec, ri))[1])
    for fmt, f in (("warc", "w.warc.gz"), ("jsonl", "d.jsonl")):
        r = SafeReader(fmt, str(tmp_path / "in"), [f], "s", max_doc_bytes=cap,
                       exclusion_writer=WorkWriter(str(tmp_path / "rej" / fmt), step="read"))
        docs = read_all(r)
        assert r.stats.stats["dropped_too_large"].total == (2 if fmt == "warc" else 1)
        assert r.stats.stats["documents"].total == len(docs) + r.stats.stats["dropped_too_large"].total
        assert {d.metadata.get("url") or d.id for d in docs} == (set(small) if fmt == "warc" else {"short"})
    assert seen == small  # the big records' payloads were never read
    rej = pq.read_table(tmp_path / "rej").to_pylist()
    assert {r["url"] or r["id"] for r in rej} == {*big, "long"}
    assert {(r["reason"], r["text"], r["source"]) for r in rej} == {("read:too_large", "", "s")}
    assert all(r["id"].startswith("urn:uuid:") for r in rej if r["url"])


def _curate_sources(cfg, tmp_path, *sources):
    import dataclasses

    from lmforge.curation.curate import CurateOutputs, run_curate

    c = dataclasses.replace(cfg, sources=list(sources), workers=1, review_labels=None, cache_dir=None)
    out = CurateOutputs(tmp_path / "data" / "curated", tmp_path / "data" / "rejected",
                        tmp_path / "metrics" / "curate.json", tmp_path / "metrics" / "funnel.csv")
    return run_curate(c, out), out


def test_a_file_without_the_text_column_fails_curation_naming_column_and_file(cfg, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lmforge.curation.curate_config import SourceConfig
    from lmforge.curation.readers import BadInputError

    pq.write_table(pa.Table.from_pylist([{"id": "a", "body": "x"}]), tmp_path / "body.parquet")
    with pytest.raises(BadInputError, match=r"data.sources\[f\]: \S+/body.parquet: no 'text' column"):
        _curate_sources(cfg, tmp_path, SourceConfig("f", str(tmp_path / "body.parquet"), "parquet"))
    assert not (tmp_path / "data" / "curated").exists()


def test_a_source_without_documents_fails_but_one_empty_file_only_warns(cfg, tmp_path):
    from lmforge.curation.curate_config import SourceConfig
    from lmforge.curation.finalize import BadInputWarning
    from lmforge.curation.readers import BadInputError

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a-empty.jsonl").write_text("")
    src = SourceConfig("e", str(tmp_path / "in" / "*.jsonl"), "jsonl")
    with pytest.raises(BadInputError, match=r"data.sources\[e\]: no documents in \S+/a-empty.jsonl \(empty file\)"):
        _curate_sources(cfg, tmp_path, src)
    assert not (tmp_path / "data" / "curated").exists()
    (tmp_path / "in" / "b-docs.jsonl").write_text("\n".join(
        (SAMPLE / "pydoc-rst-00000.jsonl").read_text().splitlines()[:3]) + "\n")
    with pytest.warns(BadInputWarning, match=r"a-empty.jsonl: empty file skipped \(no documents\)"):
        metrics, out = _curate_sources(cfg, tmp_path, src)
    assert metrics["input"]["empty_files"] == 1 and metrics["input"]["documents"] == 3
    assert [f.split("/")[-1] for f in metrics["input"]["bad_files"]] == ["a-empty.jsonl"]


def test_stage_exits_2_naming_the_file_when_jsonl_records_lack_text(tmp_path, params):
    import yaml

    (tmp_path / "t.jsonl").write_text('{"id": "a", "content": "x"}\n')
    data = {**params["data"], "sources": [{"name": "mine", "path": str(tmp_path / "t.jsonl"), "format": "jsonl"}],
            "workers": 1}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": data}))
    env = {**os.environ, "LMFORGE_PARAMS": str(tmp_path / "params.yaml"), "PYTHONPATH": str(REPO)}
    p = subprocess.run([sys.executable, "-m", "stages.curate"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("curate: data.sources[mine]: ") and "t.jsonl: no 'text' key" in last, p.stderr
