"""Curation's progress line: shards done, share of input bytes, documents read, rate and ETA."""
from __future__ import annotations

import dataclasses
import json
import logging
import re
from types import SimpleNamespace

from lmforge.testing.curate import SAMPLE


def test_the_line_counts_finished_shards_and_estimates_the_rest_by_input_bytes(tmp_path):
    from lmforge.curation.progress import Progress

    files = []
    for i, size in enumerate((3000, 1000)):
        files.append(tmp_path / f"in-{i}.jsonl")
        files[-1].write_bytes(b"x" * size)
    todo = [SimpleNamespace(source="web", rank=i, file=str(f)) for i, f in enumerate(files)]
    work = tmp_path / "work"
    p = Progress(work, todo, every_s=60)
    assert p.line().startswith("[curate] 0/2 shards (0% of 0.0 MB), 0 documents read") and "ETA unknown" in p.line()
    stats = work / "web/logs/stats/00000.json"
    stats.parent.mkdir(parents=True)
    stats.write_text(json.dumps([{"name": "reader", "stats": {"documents": {"total": 42}}}]))
    line = p.line()
    assert "1/2 shards (75% of 0.0 MB), 42 documents read" in line, line
    eta = re.search(r"ETA (\d+):(\d\d):(\d\d)", line)
    elapsed = re.search(r"(\d+):(\d\d):(\d\d) elapsed", line)
    assert eta and elapsed   # a quarter of the bytes left at the rate so far: a third of the time taken
    secs = [int(h) * 3600 + int(m) * 60 + int(s) for h, m, s in (eta.groups(), elapsed.groups())]
    assert secs[0] <= secs[1] / 3 + 1


def test_a_curate_run_logs_progress_lines(cfg, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="lmforge.curation.progress")
    from lmforge.curation.curate import CurateOutputs, run_curate
    from lmforge.curation.curate_config import SourceConfig

    lines = (SAMPLE / "pydoc-rst-00000.jsonl").read_text().splitlines()
    for i in range(2):
        (tmp_path / "in" / f"rst-{i}.jsonl").parent.mkdir(exist_ok=True)
        (tmp_path / "in" / f"rst-{i}.jsonl").write_text("\n".join(lines[i * 4:(i + 1) * 4]) + "\n")
    src = dataclasses.replace(next(s for s in cfg.sources if s.format == "jsonl"), path=str(tmp_path / "in/rst-*.jsonl"))
    assert isinstance(src, SourceConfig)
    c = dataclasses.replace(cfg, sources=[src], workers=1, cache_dir=None, review_labels=None, progress_s=0.2)
    out = CurateOutputs(*(tmp_path / "out" / n for n in ("curated.parquet", "rejected.parquet", "m.json", "f.csv")))
    run_curate(c, out)
    err = caplog.text
    assert re.search(r"\[curate\] 2 shard\(s\) to run, [\d.]+ MB of input", err), err[-2000:]
    last = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[curate] 2/2 shards")]
    assert last and last[-1].endswith("done") and "8 documents read" in last[-1], err[-2000:]
    assert "MB/s" in last[-1]
