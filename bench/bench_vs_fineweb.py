"""lmforge's curate stage against datatrove's own FineWeb recipe, on the same shards, in one run.

The baseline is datatrove's ``examples/fineweb.py`` as written: WarcReader, URLFilter,
Trafilatura(favour_precision=True), language filter, Gopher repetition and quality, C4 quality
(``filter_no_terminal_punct=False``), FineWeb quality, JSONL writer; then its four MinHash stages
(64-bit hashes, 14 buckets x 8, 5-grams; sha1, as datatrove
0.9's xxhash path raises on str input) and the deduplicated JSONL. Two substitutions keep it
offline, and both cost the same on either side: the fastText language model (downloaded at run
time) is replaced by the py3langid filter lmforge uses, at the recipe's threshold 0.65 for
English; the URL filter loads its bundled public-suffix snapshot instead of fetching one.

lmforge runs its curate library (``run_curate``) with params.yaml's settings, once per
extraction engine. Every run is a fresh process on the same local executor with the same
number of workers. Printed: wall seconds, docs/s, CPU-ms per page, pages kept and words kept,
and each run's throughput as a ratio of the recipe's; then the decision agreement of lmforge's
faster quality filters with datatrove's stock ones on the sample crawl (``decision_agreement``).

    python bench/bench_vs_fineweb.py --docs 2000 [--workers 2] [--crawl DIR]
"""
from __future__ import annotations

import argparse
import importlib.metadata  # noqa: F401
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_curate_scale import PER_SHARD, TreeSampler, build_crawl, crawl_id, link_shards, run_one

import _support  # noqa: F401 - first: this checkout's lmforge on sys.path (bench/_support.py)


def fineweb_recipe(listing: Path, work: Path, workers: int):
    """The filtering pipeline and the four MinHash stages of datatrove's examples/fineweb.py."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupBuckets
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter, GopherQualityFilter
    from datatrove.pipeline.filters import GopherRepetitionFilter
    from datatrove.pipeline.readers import JsonlReader, WarcReader
    from datatrove.pipeline.writers.jsonl import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    from lmforge.curation.filters.language import LanguageIDFilter
    from lmforge.curation.filters.url import OfflineURLFilter

    tasks = len(list(listing.glob("*.warc.gz")))
    # 64-bit hashes as the recipe asks; sha1, since this datatrove's xxhash path raises on str input
    mh = MinhashConfig(num_buckets=14, hashes_per_bucket=8, n_grams=5, hash_config=HashConfig(precision=64, hash_fc="sha1"))

    def run(pipeline, n, name):
        LocalPipelineExecutor(pipeline=pipeline, tasks=n, workers=min(workers, n),
                              logging_dir=str(work / "logs" / name)).run()

    run([WarcReader(str(listing), glob_pattern="*.warc.gz"), OfflineURLFilter(), Trafilatura(favour_precision=True),
         LanguageIDFilter(allowed=["en"], min_score=0.65), GopherRepetitionFilter(), GopherQualityFilter(),
         C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter(),
         JsonlWriter(str(work / "filtered"))], tasks, "filter")
    run([JsonlReader(str(work / "filtered")), MinhashDedupSignature(str(work / "sigs"), config=mh)], tasks, "sigs")
    run([MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=mh)], mh.num_buckets, "buckets")
    run([MinhashDedupCluster(str(work / "buckets"), str(work / "remove"), config=mh)], 1, "cluster")
    run([JsonlReader(str(work / "filtered")), MinhashDedupFilter(str(work / "remove")),
         JsonlWriter(str(work / "out"))], tasks, "dedup")
    return list(JsonlReader(str(work / "out")).run())


def run_recipe(n: int, crawl: Path, workers: int) -> dict:
    from datatrove.utils.logging import logger

    logger.remove()
    with tempfile.TemporaryDirectory() as tmp:
        listing = link_shards(crawl, n, Path(tmp) / "in")
        t = time.perf_counter()
        with TreeSampler() as tree:
            docs = fineweb_recipe(listing, Path(tmp), workers)
        wall = time.perf_counter() - t
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {"docs": min(n, len(list(crawl.glob("crawl-*.warc.gz"))) * PER_SHARD), "curated": len(docs), "wall_s": wall,
            "curated_words": sum(len(d.text.split()) for d in docs),
            "cpu_s": own.ru_utime + own.ru_stime + sum(tree.cpu.values())}


def one(kind: str, n: int, crawl: Path, workers: int) -> dict:
    if kind == "fineweb-recipe":
        return run_recipe(n, crawl, workers)
    return run_one(n, crawl, kind, "datasketch", workers)


def decision_agreement() -> str:
    """lmforge's quality filters (spaCy words cached per whitespace run, Gopher repetition with
    its n-grams counted in C) against datatrove's stock filters (its spaCy tokenizer on every
    call, its Gopher repetition), params.yaml's thresholds, on every English text of the
    committed sample crawl (data/sample/crawl, what the pipeline curates): the share of texts
    both keep or both reject, and with the same reason."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)

    from lmforge.config import section
    from lmforge.curation.curate_config import DataConfig, filter_kwargs
    from lmforge.curation.filters.language import LanguageIDFilter
    from lmforge.curation.filters.quality import (LangC4Quality, LangFineWebQuality, LangGopherQuality,
                                                  LangGopherRepetition)
    from lmforge.testing.curate import extract, jsonl_docs, read_warc_pages

    params = section(DataConfig, "data", path=str(_support.REPO / "params.yaml")).filters
    sections = (params.gopher_repetition, params.gopher_quality, params.c4_quality, params.fineweb_quality)
    texts = [extract(h) for h in read_warc_pages().values()] + [d["text"] for d in jsonl_docs()]
    lang = LanguageIDFilter(allowed=None, min_score=0)
    english = [t for t in texts if t and lang.classify(t)[0] == "en"]
    chains = [[cls(**filter_kwargs(p)) for cls, p in zip(classes, sections)]
              for classes in ((LangGopherRepetition, LangGopherQuality, LangC4Quality, LangFineWebQuality),
                              (GopherRepetitionFilter, GopherQualityFilter, C4QualityFilter, FineWebQualityFilter))]

    def verdict(chain, i, text):
        doc = Document(text=text, id=str(i), metadata={"language": "en"})
        for f in chain:
            v = f.filter(doc)
            if v is not True:
                return v if isinstance(v, tuple) else (False, f.name)
        return True

    ours, stock = ([verdict(c, i, t) for i, t in enumerate(english)] for c in chains)
    same = sum((a is True) == (b is True) for a, b in zip(ours, stock))
    same_reason = sum(a == b for a, b in zip(ours, stock))
    return (f"decision agreement with datatrove's stock filters on the sample crawl: {same}/{len(english)} "
            f"English texts ({100 * same / len(english):.2f} %), same reason {same_reason}/{len(english)}; "
            f"kept {sum(v is True for v in ours)} / {sum(v is True for v in stock)}")


def main() -> int:
    ap = argparse.ArgumentParser(description="lmforge curate vs datatrove's FineWeb recipe")
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--crawl", type=Path, default=Path("/tmp/lmforge-debian-crawl"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", nargs="+", default=["fineweb-recipe", "resiliparse", "trafilatura"])
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: one run, JSON out
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.docs, args.crawl, args.workers)))
        return 0
    build_crawl(args.docs, args.crawl)
    print(f"{args.docs} pages of {args.crawl} ({crawl_id(args.crawl)}), {args.workers} workers, each run in a "
          "fresh process")
    rows = {}
    for kind in args.runs:
        p = subprocess.run([sys.executable, __file__, "--one", kind, "--docs", str(args.docs), "--crawl",
                            str(args.crawl), "--workers", str(args.workers)], capture_output=True, text=True)
        if p.returncode:
            print(p.stderr[-3000:])
            return 1
        rows[kind] = r = json.loads(p.stdout.strip().splitlines()[-1])
        base = rows.get("fineweb-recipe", r)
        print(f"{kind:15s} {r['wall_s']:7.1f} s  {r['docs'] / r['wall_s']:6.1f} docs/s  "
              f"{1000 * r['cpu_s'] / r['docs']:6.1f} CPU-ms/page  kept {r['curated']:5d} pages "
              f"{r['curated_words']:8d} words  throughput {base['wall_s'] / r['wall_s']:.2f}x recipe", flush=True)
    print(decision_agreement())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
