"""Near-dedup throughput: lmforge's datasketch MinHash-LSH vs datatrove's four MinHash stages.

Same documents, same banding (params.yaml data.dedup: 14 bands x 8 rows, 5-word shingles),
measured in one run on this machine. Documents are real: the plain text of the sample crawl's
English handbook and Python doc pages (tags stripped with lxml, to keep the bench fast), the
JSONL reStructuredText sources and the fortunes Parquet shard. Natural near-duplicates among
them are removed first so that the base set is clean; then near-duplicates are planted by
small edits (``lmforge.data.dedup.plant_near_duplicates``).

For both methods a planted pair counts as found when exactly one of its two documents is
removed; any other removed document is a false positive. datatrove runs its stages as its
docs show (LocalPipelineExecutor, one worker, signature -> buckets -> cluster -> filter) with
``HashConfig(hash_fc="sha1")`` (0.9.0's default xxhash path raises on str input).

    python bench/bench_dedup.py [--planted 60]
"""
from __future__ import annotations

import argparse
import importlib.metadata  # noqa: F401
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SAMPLE = REPO / "data" / "sample" / "crawl"


def load_docs() -> list[tuple[str, str]]:
    import lxml.html
    import pyarrow.parquet as pq
    from warcio.archiveiterator import ArchiveIterator

    docs = []
    for f in sorted(SAMPLE.glob("*.warc.gz")):
        with open(f, "rb") as fh:
            for rec in ArchiveIterator(fh):
                url = rec.rec_headers.get_header("WARC-Target-URI") or ""
                if rec.rec_type == "response" and ("/en-US/" in url or "docs.python.org" in url):
                    text = lxml.html.fromstring(rec.content_stream().read()).text_content()
                    docs.append((url, "\n".join(ln.strip() for ln in text.splitlines() if ln.strip())))
    docs += [(d["id"], d["text"]) for d in map(json.loads, (SAMPLE / "pydoc-rst-00000.jsonl").open())]
    docs += [(d["id"], d["text"]) for d in pq.read_table(SAMPLE / "fortunes-00000.parquet").to_pylist()]
    return docs


def score(removed: set[str], pairs: list[tuple[str, str]]) -> tuple[float, int]:
    in_pairs = {x for p in pairs for x in p}
    found = sum(1 for a, b in pairs if (a in removed) != (b in removed))
    return found / len(pairs), len(removed - in_pairs)


def run_datasketch(docs, params) -> tuple[float, set[str]]:
    from lmforge.data.dedup import dedup

    t = time.perf_counter()
    removed = {d.id for d in dedup(docs, params) if d.reason}
    return time.perf_counter() - t, removed


def run_datatrove(docs, params, work: Path) -> tuple[float, set[str]]:
    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter,
                                          MinhashDedupSignature)
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.utils.hashing import HashConfig

    cfg = MinhashConfig(hash_config=HashConfig(hash_fc="sha1"), n_grams=params.shingle_size,
                        num_buckets=params.bands, hashes_per_bucket=params.rows, seed=params.seed)
    documents = [Document(text=t, id=i) for i, t in docs]
    kept: list[str] = []

    def collect(data, rank=0, world_size=1):
        for d in data:
            kept.append(d.id)
            yield d

    def run(pipeline, tasks, name):
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, logging_dir=str(work / "logs" / name),
                              skip_completed=False).run()

    t = time.perf_counter()
    run([documents, MinhashDedupSignature(output_folder=str(work / "sigs"), config=cfg)], 1, "sigs")
    run([MinhashDedupBuckets(input_folder=str(work / "sigs"), output_folder=str(work / "buckets"),
                             config=cfg)], cfg.num_buckets, "buckets")
    run([MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "remove"),
                             config=cfg)], 1, "cluster")
    run([documents, MinhashDedupFilter(input_folder=str(work / "remove")), collect], 1, "filter")
    elapsed = time.perf_counter() - t
    return elapsed, {i for i, _ in docs} - set(kept)


def main() -> int:
    ap = argparse.ArgumentParser(description="near-dedup throughput, datasketch vs datatrove")
    ap.add_argument("--planted", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from datatrove.utils.logging import logger

    from lmforge.config import section
    from lmforge.data.curate_config import DataConfig
    from lmforge.data.dedup import dedup, plant_near_duplicates

    logger.remove()  # datatrove's per-task tables would drown the result
    params = section(DataConfig, "data", path=str(REPO / "params.yaml")).dedup
    raw = load_docs()
    natural = {d.id for d in dedup(raw, params) if d.reason}
    base = [d for d in raw if d[0] not in natural]
    planted = plant_near_duplicates(base, args.planted, seed=args.seed)
    docs = base + [(i, t) for i, t, _ in planted]
    pairs = [(orig, new) for new, _, orig in planted]
    print(f"documents: {len(docs)} ({len(base)} real, {len(natural)} natural duplicates set aside, "
          f"{len(planted)} planted near-duplicates); bands x rows = {params.bands} x {params.rows}, "
          f"{params.shingle_size}-word shingles, threshold {params.threshold}")

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["datatrove (4 MinHash stages)"] = run_datatrove(docs, params, Path(tmp))
    results["lmforge datasketch LSH"] = run_datasketch(docs, params)
    rates = {}
    for name, (sec, removed) in results.items():
        recall, fp = score(removed, pairs)
        rates[name] = (len(docs) / sec, recall)
        print(f"{name:32s} {len(docs) / sec:9.1f} docs/s  {sec:6.2f} s  recall {recall:.3f}  "
              f"false positives {fp}")
    (ours, r_ours), (theirs, r_theirs) = rates["lmforge datasketch LSH"], rates["datatrove (4 MinHash stages)"]
    print(f"ratio (datasketch / datatrove docs/s): {ours / theirs:.1f}x  "
          f"(goal >= 10x at equal or better recall: recall {r_ours:.3f} vs {r_theirs:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
