"""Near-dedup throughput: lmforge's datasketch MinHash-LSH vs datatrove's four MinHash stages.

Same documents, same banding (params.yaml data.dedup: 14 bands x 8 rows, 5-word shingles),
measured in one run on this machine. Documents are real: the plain text of the sample crawl's
English handbook and Python doc pages (tags stripped with lxml, to keep the bench fast), the
JSONL reStructuredText sources and the fortunes Parquet shard. Natural near-duplicates among
them are removed first so that the base set is clean; then near-duplicates are planted by
small edits (``lmforge.curation.dedup.plant_near_duplicates``).

For both methods a planted pair counts as found when exactly one of its two documents is
removed; any other removed document is a false positive. datatrove runs its stages as its
docs show (LocalPipelineExecutor, one worker, signature -> buckets -> cluster -> filter) with
``HashConfig(hash_fc="sha1")`` (0.9.0's default xxhash path raises on str input).

    python bench/bench_dedup.py [--planted 60]
    python bench/bench_dedup.py --curve     # recall / false positives over banding x threshold

``--curve`` plants copies of real documents (short < 150 words, medium < 600, long) whose
5-word-shingle Jaccard similarity to their original (of the normalised text, as dedup sees it)
is drawn uniformly from 0.3 to 1.0: words are replaced by new ones at random places until the
similarity reaches the target. Each original is used once. For each banding (bands x rows = num_perm) and confirming
threshold it prints the recall per similarity bin (a copy counts as found when it is removed
as a duplicate of its original) and the false positives: copies below 0.5 that were removed,
and originals removed as duplicates of a document less than 0.5 similar.
"""
from __future__ import annotations

import argparse
import importlib.metadata  # noqa: F401
import json
import tempfile
import time
from pathlib import Path

from _support import REPO  # first: this checkout's lmforge on sys.path (bench/_support.py)


def load_docs() -> list[tuple[str, str]]:
    import lxml.html
    import pyarrow.parquet as pq

    from lmforge.testing.curate import SAMPLE, read_warc_pages

    docs = []
    for url, html in read_warc_pages().items():
        if "/en-US/" in url or "docs.python.org" in url:
            text = lxml.html.fromstring(html).text_content()
            docs.append((url, "\n".join(ln.strip() for ln in text.splitlines() if ln.strip())))
    docs += [(d["id"], d["text"]) for d in map(json.loads, (SAMPLE / "pydoc-rst-00000.jsonl").open())]
    docs += [(d["id"], d["text"]) for d in pq.read_table(SAMPLE / "fortunes-00000.parquet").to_pylist()]
    return docs


def score(removed: set[str], pairs: list[tuple[str, str]]) -> tuple[float, int]:
    in_pairs = {x for p in pairs for x in p}
    found = sum(1 for a, b in pairs if (a in removed) != (b in removed))
    return found / len(pairs), len(removed - in_pairs)


def run_datasketch(docs, params) -> tuple[float, set[str]]:
    from lmforge.curation.dedup import dedup

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


CURVE_CONFIGS = [(14, 8), (16, 7), (20, 6), (20, 5), (25, 5)]
CURVE_THRESHOLDS = [0.6, 0.65, 0.7]
BINS = [0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 1.01]
LENGTHS = {"short": (50, 150), "medium": (150, 600), "long": (600, 10**9)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def copy_at(ws: list[str], target: float, rng, k: int) -> tuple[str, float]:
    """``ws`` with words replaced at random places so that its shingle Jaccard is near ``target``."""
    from lmforge.curation.dedup import shingles

    base, order = shingles(ws, k), rng.sample(range(len(ws)), len(ws))

    def edit(m: int) -> list[str]:
        out = list(ws)
        for j, pos in enumerate(order[:m]):
            out[pos] = f"zq{j}x{rng.randrange(10**6)}"
        return out

    lo, hi = 0, len(ws)
    while lo < hi:  # the smallest number of replaced words that brings the similarity to <= target
        mid = (lo + hi) // 2
        if jaccard(base, shingles(edit(mid), k)) > target:
            lo = mid + 1
        else:
            hi = mid
    best = edit(lo)
    return " ".join(best), jaccard(base, shingles(best, k))


def plant_curve(base, per_class: int, k: int, seed: int = 0):
    """Copies at similarities drawn uniformly from [0.3, 1], ``per_class`` per length class:
    [(copy_id, text, original_id, jaccard, length class)]."""
    import random

    from lmforge.curation.dedup import words

    rng = random.Random(seed)
    pools = {name: [(i, words(t)) for i, t in base if lo <= len(words(t)) < hi] for name, (lo, hi) in LENGTHS.items()}
    out = []
    for name, pool in pools.items():
        for orig, ws in rng.sample(pool, min(per_class, len(pool))):
            text, sim = copy_at(ws, rng.uniform(0.3, 1.0), rng, k)
            out.append((f"curve-{len(out):04d}", text, orig, sim, name))
    return out


def curve(base, params, per_class: int) -> None:
    import dataclasses

    from lmforge.curation.dedup import dedup

    from lmforge.curation.dedup import shingles, words

    planted = plant_curve(base, per_class, params.shingle_size)
    docs = base + [(i, t) for i, t, *_ in planted]
    texts = dict(docs)

    def true_sim(a: str, b: str) -> float:
        k = params.shingle_size
        return jaccard(shingles(words(texts[a]), k), shingles(words(texts[b]), k))

    n_len = {name: sum(1 for *_, ln in planted if ln == name) for name in LENGTHS}
    print(f"curve: {len(base)} real documents, {len(planted)} copies at similarity uniform in 0.3-1.0 "
          f"({n_len}); bins by true shingle Jaccard")
    labels = [f"[{a:.2f},{min(b, 1):.2f}{']' if b > 1 else ')'}" for a, b in zip(BINS, BINS[1:])]
    counts = [sum(1 for *_, s, _ in planted if a <= s < b) for a, b in zip(BINS, BINS[1:])]
    print(f"{'bands x rows':>12s} {'thr':>5s} " + " ".join(f"{lab:>12s}" for lab in labels)
          + "   FP<0.5  orig-FP<0.5  recall>=0.75 short/medium/long")
    print(f"{'copies':>18s} " + " ".join(f"{c:>12d}" for c in counts))
    for bands, rows in CURVE_CONFIGS:
        for thr in CURVE_THRESHOLDS:
            p = dataclasses.replace(params, bands=bands, rows=rows, num_perm=bands * rows, threshold=thr)
            out = {d.id: d for d in dedup(docs, p)}
            found = {i for i, _, o, *_ in planted if out[i].reason and out[i].duplicate_of == o}
            rec = [sum(1 for i, *_, s, _ in planted if a <= s < b and i in found) / max(n, 1)
                   for (a, b), n in zip(zip(BINS, BINS[1:]), counts)]
            fp = sum(1 for i, *_, s, _ in planted if s < 0.5 and out[i].reason)
            orig_fp = sum(1 for i, _ in base if out[i].reason and true_sim(i, out[i].duplicate_of) < 0.5)
            by_len = []
            for name in LENGTHS:
                cell = [i for i, *_, s, ln in planted if s >= 0.75 and ln == name]
                by_len.append(f"{sum(i in found for i in cell) / max(len(cell), 1):.2f}")
            print(f"{bands:>7d} x {rows:<2d} {thr:5.2f} " + " ".join(f"{r:12.2f}" for r in rec)
                  + f"   {fp:6d}  {orig_fp:11d}  {'/'.join(by_len)}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description="near-dedup throughput, datasketch vs datatrove")
    ap.add_argument("--planted", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--curve", action="store_true", help="recall/false positives over banding x threshold")
    ap.add_argument("--per-class", type=int, default=120, help="--curve: copies per length class")
    args = ap.parse_args()
    from datatrove.utils.logging import logger

    from lmforge.config import section
    from lmforge.curation.curate_config import DataConfig
    from lmforge.curation.dedup import dedup, plant_near_duplicates

    logger.remove()  # datatrove's per-task tables would drown the result
    params = section(DataConfig, "data", path=str(REPO / "params.yaml")).dedup
    raw = load_docs()
    natural = {d.id for d in dedup(raw, params) if d.reason}
    base = [d for d in raw if d[0] not in natural]
    if args.curve:
        curve(base, params, args.per_class)
        return 0
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
