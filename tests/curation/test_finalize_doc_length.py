"""The global curate step's memory does not grow with document length (issue 22, item 13).

The same number of documents, once with ~500-word texts and once with 8x longer ones, is
published by ``finalize`` in a fresh process each; the process reports the step's peak traced
Python memory (tracemalloc) plus the peak of Arrow's memory pool (Parquet reading and writing).
What may differ between the two runs is bounded by the step's fixed caps (the output row group's
text, the merge's per-file row groups), not by the corpus's text: before the caps were made
byte-bounded and the merge held Python copies of whole row groups, the long run held about
4 M characters more (17.5 MB measured, against 5.4 MB now), well over the bound.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lmforge.testing.curate import REPO
from support.curate_work import synthetic_texts, write_work

MEASURE = r"""
import dataclasses, json, sys, tracemalloc
from pathlib import Path
import pyarrow as pa
from lmforge.config import section
from lmforge.curation.curate_config import DataConfig, SourceConfig
from lmforge.curation.finalize import finalize
from lmforge.curation.publish import decide_duplicates
work, out = Path(sys.argv[1]), Path(sys.argv[2])
cfg = section(DataConfig, "data")
cfg = dataclasses.replace(cfg, review_labels=None, sources=[SourceConfig("web", "unused", "jsonl")])
decide_duplicates(cfg, work)  # imports and the dedup index's first use, outside the measurement
pool = pa.default_memory_pool()
arrow_before = pool.max_memory()
tracemalloc.start()
m = finalize(cfg, work, out / "curated", out / "rejected", out / "curate.json", out / "funnel.csv")
print(json.dumps({"python": tracemalloc.get_traced_memory()[1], "arrow": pool.max_memory() - arrow_before,
                  "published": m["curated"]["documents"] + m["rejected"]["documents"],
                  "characters": m["curated"]["characters"]}))
"""
DOCS, WORDS = 240, 500


@pytest.fixture(scope="module")
def peaks(cfg, tmp_path_factory) -> dict[int, dict]:
    out = {}
    for scale in (1, 8):
        tmp = tmp_path_factory.mktemp(f"len{scale}")
        write_work(tmp / "work", cfg, "web", synthetic_texts(DOCS, seed=1, words=WORDS * scale), shards=4,
                   kept_share=0.7)
        p = subprocess.run([sys.executable, "-c", MEASURE, str(tmp / "work"), str(tmp / "out")], cwd=REPO,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
        out[scale] = json.loads(p.stdout.strip().splitlines()[-1])
    return out


def test_every_document_is_published_at_both_lengths(peaks):
    assert peaks[1]["published"] == peaks[8]["published"] == DOCS
    assert peaks[8]["characters"] > 6 * peaks[1]["characters"]  # the long run really holds 8x the text


def test_peak_memory_of_the_global_step_does_not_follow_document_length(peaks):
    mb = {s: (p["python"] + p["arrow"]) / 2**20 for s, p in peaks.items()}
    text_mb = peaks[8]["characters"] / 2**20
    assert mb[8] - mb[1] < 8, f"{mb[1]:.1f} MB -> {mb[8]:.1f} MB for {text_mb:.1f} MB of curated text ({peaks})"
