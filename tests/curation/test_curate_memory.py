"""The global curate step holds no corpus: its peak memory barely moves from 1k to 8k documents.

The step runs in a fresh process over shard-task outputs written by the pipeline's own writers
(tests/support/curate_work.py); the peak resident memory of that process (``VmHWM``: unlike
``ru_maxrss``, it is not inherited from the parent's peak across fork and exec) is compared
between the two sizes, less the growth of the dedup index itself (the in-memory LSH of the
datasketch engine grows with the kept documents by design; datatrove's engine is the path past
that), which a second fresh process measures by running only the dedup decisions. Holding the
rows, as the step used to, costs ~21.5 KB per input document: ~150 MB more at 8k.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lmforge.testing.curate import REPO
from support.curate_work import synthetic_texts, write_work

SOURCES = ("docs", "web")
FINALIZE = r"""
import dataclasses, json, re, sys
def hwm_kb():
    return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))
from pathlib import Path
from lmforge.config import section
from lmforge.curation.curate_config import DataConfig, SourceConfig
from lmforge.curation.finalize import finalize
work, out = Path(sys.argv[1]), Path(sys.argv[2])
cfg = section(DataConfig, "data")
cfg = dataclasses.replace(cfg, review_labels=None, sources=[SourceConfig(s, "unused", "jsonl") for s in sys.argv[3:]])
before = hwm_kb()
m = finalize(cfg, work, out / "curated", out / "rejected", out / "curate.json", out / "funnel.csv")
print(json.dumps({"before_kb": before, "peak_kb": hwm_kb(),
                  "curated": m["curated"]["documents"], "rejected": m["rejected"]["documents"],
                  "dedup": m["dedup"]}))
"""
# the same process start, then only the dedup decisions (the index and the decisions it returns)
INDEX = FINALIZE.replace("from lmforge.curation.finalize import finalize", "from lmforge.curation.publish import decide_duplicates")
INDEX = INDEX[:INDEX.index("m = finalize(")] + """decide_duplicates(cfg, work)
print(json.dumps({"before_kb": before, "peak_kb": hwm_kb()}))
"""


@pytest.fixture(scope="module")
def peaks(cfg, tmp_path_factory) -> dict[int, dict]:
    out = {}
    for n in (1000, 8000):
        tmp = tmp_path_factory.mktemp(f"mem{n}")
        texts = synthetic_texts(n, seed=n)
        for i, s in enumerate(SOURCES):
            write_work(tmp / "work", cfg, s, texts[i::len(SOURCES)], shards=4, seed=i)
        out[n] = {**child(FINALIZE, tmp), "dir": tmp / "out", "index": child(INDEX, tmp)}
    return out


def child(script: str, tmp) -> dict:
    p = subprocess.run([sys.executable, "-c", script, str(tmp / "work"), str(tmp / "out"), *SOURCES],
                       cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_every_document_is_published(peaks):
    for n, r in peaks.items():
        assert r["curated"] + r["rejected"] == n
        assert r["dedup"]["exact_dedup"] > 0 and r["dedup"]["near_dedup"] > 0


def test_peak_memory_of_the_global_step_grows_less_than_50_mb_from_1k_to_8k_documents(peaks):
    growth_mb = (peaks[8000]["peak_kb"] - peaks[1000]["peak_kb"]) / 1024
    index_mb = (peaks[8000]["index"]["peak_kb"] - peaks[1000]["index"]["peak_kb"]) / 1024
    assert index_mb < growth_mb + 5  # the index is part of the step, never more than all of it
    assert growth_mb - index_mb < 50, f"peak grew by {growth_mb:.0f} MB, the index by {index_mb:.0f} MB ({peaks})"


def test_outputs_are_written_in_chunks(peaks):
    import pyarrow.parquet as pq

    rejected = sorted(p.name for p in (peaks[8000]["dir"] / "rejected").glob("*.parquet"))
    assert "docs-gopher_quality-00000.parquet" in rejected and "web-global-00000.parquet" in rejected
    curated = sorted((peaks[8000]["dir"] / "curated").glob("*.parquet"))
    assert [p.name for p in curated] == ["docs-00000.parquet", "web-00000.parquet"]
    assert all(pq.ParquetFile(p).metadata.num_row_groups >= 1 for p in curated)
    assert max(pq.ParquetFile(p).metadata.row_group(0).num_rows for p in curated) <= 1024
