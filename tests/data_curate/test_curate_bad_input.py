"""Bad input: truncated/corrupt shards and records are counted and skipped with a warning naming
the file; a missing input path or an invalid parameter fails at once with a clear message."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from curate_testdata import REPO, SAMPLE, read_warc_pages, truncated


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
    from lmforge.data.readers import SafeReader

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
    from lmforge.data.readers import SafeReader

    lines = (SAMPLE / "pydoc-rst-00000.jsonl").read_text().splitlines()[:5]
    lines.insert(2, '{"id": "broken", "text": "unterminated')
    (tmp_path / "docs.jsonl").write_text("\n".join(lines) + "\n")
    r = SafeReader("jsonl", str(tmp_path), ["docs.jsonl"], "rst")
    docs = read_all(r)
    assert len(docs) == 5 and r.stats.stats["corrupt_records"].total == 1
    assert any("docs.jsonl: record 2 corrupt record" in m for m in warnings_log)


def test_corrupt_parquet_file_is_counted_and_skipped(tmp_path, warnings_log):
    from lmforge.data.readers import SafeReader

    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    (tmp_path / "good.parquet").write_bytes((SAMPLE / "fortunes-00000.parquet").read_bytes())
    r = SafeReader("parquet", str(tmp_path), ["bad.parquet", "good.parquet"], "f")
    assert len(read_all(r)) == 60 and r.stats.stats["corrupt_files"].total == 1
    assert any("bad.parquet" in m for m in warnings_log)


def test_missing_path_fails_at_once_naming_the_source(cfg):
    import dataclasses

    from lmforge.data.curate import plan
    from lmforge.data.readers import MissingInputError

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
])
def test_invalid_params_fail_naming_the_key(params, patch, message):
    from lmforge.config import ParamsError, section
    from lmforge.data.curate_config import DataConfig

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
