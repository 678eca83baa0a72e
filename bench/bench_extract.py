"""Extraction engines side by side: Trafilatura vs Resiliparse on the same pages, in one run.

For each engine, the curate pipeline's own extraction step (``lmforge.curation.extract``) runs over
the same HTML pages and prints docs/s (wall) and CPU-ms per page (this process and its
children: Trafilatura runs in datatrove's sandbox process). Then each extracted text goes
through the source's filter chain (URL, language, Gopher, C4, FineWeb, as params.yaml sets
them; pages of docs.python.org use the ``pydoc`` source's overrides, all others ``handbook``'s)
to give the share of pages kept. Agreement is the token-level F1 (bag of words) between the
two texts of one page, on ``--pages`` pages drawn with a fixed seed; ``--show`` prints the
pages where they disagree most, with the words only one engine kept, to be read. The time
to read the shards with warcio and with FastWARC is printed too.

    python bench/bench_extract.py                                   # the sample crawl
    python bench/bench_extract.py --crawl '/tmp/debian-crawl/*.warc.gz' --pages 200 --show 20
"""
from __future__ import annotations

import argparse
import glob
import importlib.metadata  # noqa: F401
import random
import re
import resource
import time
from collections import Counter
from pathlib import Path

from _support import REPO  # first: this checkout's lmforge on sys.path (bench/_support.py)

WORD = re.compile(r"\w+")


def read_pages(files: list[str]) -> tuple[list[tuple[str, str]], dict[str, float]]:
    """(url, html) of every HTML response; and the seconds each WARC library took to read them."""
    from fastwarc.warc import ArchiveIterator as FastIterator
    from fastwarc.warc import WarcRecordType
    from warcio.archiveiterator import ArchiveIterator

    pages, took = [], {}
    t = time.perf_counter()
    for f in files:
        with open(f, "rb") as fh:
            for rec in ArchiveIterator(fh):
                if rec.rec_type == "response":
                    url = rec.rec_headers.get_header("WARC-Target-URI")
                    pages.append((url, rec.content_stream().read().decode("utf-8", "replace")))
    took["warcio"] = time.perf_counter() - t
    t, n = time.perf_counter(), 0
    for f in files:
        with open(f, "rb") as fh:
            for rec in FastIterator(fh, record_types=WarcRecordType.response, parse_http=True):
                rec.reader.read()
                n += 1
    took["fastwarc"] = time.perf_counter() - t
    assert n == len(pages), (n, len(pages))
    return pages, took


def cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def extract_all(engine: str, pages) -> tuple[dict[str, str], float, float]:
    from datatrove.data import Document

    from lmforge.curation.curate_config import ExtractConfig
    from lmforge.curation.extract import make_extractor

    step = make_extractor(ExtractConfig(engine=engine), None)
    docs = [Document(text=html, id=url, metadata={"url": url}) for url, html in pages]
    c, t = cpu(), time.perf_counter()
    out = {d.id: d.text for d in step.run(iter(docs))}
    return out, time.perf_counter() - t, cpu() - c


def filter_chains(cfg, tmp: Path) -> dict:
    from datatrove.pipeline.filters.base_filter import BaseFilter

    from lmforge.curation.curate import SourcePlan, build_pipeline

    chains = {}
    for name in ("handbook", "pydoc"):
        src = next(s for s in cfg.sources if s.name == name)
        steps = build_pipeline(cfg, SourcePlan(cfg.for_source(src), str(tmp), []), tmp)
        chains[name] = [s for s in steps if isinstance(s, BaseFilter)]
    return chains


def kept(chains, url: str, text: str | None) -> bool:
    from datatrove.data import Document
    from datatrove.pipeline.filters.base_filter import get_filter_result

    if not text:
        return False
    doc = Document(text=text, id=url, metadata={"url": url})
    for f in chains["pydoc" if "docs.python.org" in url else "handbook"]:
        if not get_filter_result(f.filter(doc))[0]:
            return False
    return True


def f1(a: str, b: str) -> float:
    ca, cb = Counter(WORD.findall(a.lower())), Counter(WORD.findall(b.lower()))
    common = sum((ca & cb).values())
    if not common:
        return 0.0 if (ca or cb) else 1.0
    p, r = common / sum(ca.values()), common / sum(cb.values())
    return 2 * p * r / (p + r)


def show(url: str, score: float, a: str, b: str) -> None:
    wa, wb = Counter(WORD.findall(a.lower())), Counter(WORD.findall(b.lower()))
    print(f"\n--- F1 {score:.2f}  {url}  (trafilatura {len(a)} chars, resiliparse {len(b)} chars)")
    print("  only trafilatura:", " ".join(list((wa - wb).elements())[:40]))
    print("  only resiliparse:", " ".join(list((wb - wa).elements())[:40]))


def main() -> int:
    ap = argparse.ArgumentParser(description="Trafilatura vs Resiliparse extraction")
    ap.add_argument("--crawl", default=str(REPO / "data/sample/crawl/*.warc.gz"))
    ap.add_argument("--pages", type=int, default=200, help="pages compared by token F1")
    ap.add_argument("--show", type=int, default=20, help="disagreeing pages printed")
    ap.add_argument("--limit", type=int, default=0, help="use only this many pages (0: all)")
    args = ap.parse_args()
    import tempfile

    from datatrove.utils.logging import logger

    from lmforge.config import section
    from lmforge.curation.curate_config import DataConfig

    logger.remove()
    cfg = section(DataConfig, "data", path=str(REPO / "params.yaml"))
    pages, took = read_pages(sorted(glob.glob(args.crawl)))
    if args.limit:
        pages = random.Random(0).sample(pages, min(args.limit, len(pages)))
    mb = sum(len(h) for _, h in pages) / 1e6
    print(f"{len(pages)} pages ({mb:.1f} MB of HTML) from {args.crawl}")
    print(f"read: warcio {took['warcio']:.2f} s, fastwarc {took['fastwarc']:.2f} s "
          f"(fastwarc {took['warcio'] / took['fastwarc']:.1f}x; full records incl. HTTP parsing)")
    texts, rows = {}, {}
    for engine in ("trafilatura", "resiliparse"):
        texts[engine], wall, c = extract_all(engine, pages)
        rows[engine] = (len(pages) / wall, 1000 * c / len(pages))
    with tempfile.TemporaryDirectory() as tmp:
        chains = filter_chains(cfg, Path(tmp))
        keep = {e: {u for u, _ in pages if kept(chains, u, texts[e].get(u))} for e in texts}
    for e, (rate, ms) in rows.items():
        print(f"{e:12s} {rate:8.1f} docs/s  {ms:7.1f} CPU-ms/page  extracted {len(texts[e]):5d}  "
              f"kept after filters {len(keep[e]):5d} ({len(keep[e]) / len(pages):.1%})")
    (ta, _), (ra, _) = rows["trafilatura"], rows["resiliparse"]
    print(f"speed ratio resiliparse/trafilatura: {ra / ta:.1f}x docs/s, "
          f"{rows['trafilatura'][1] / rows['resiliparse'][1]:.1f}x CPU")
    print(f"kept by both {len(keep['trafilatura'] & keep['resiliparse'])}, only trafilatura "
          f"{len(keep['trafilatura'] - keep['resiliparse'])}, only resiliparse "
          f"{len(keep['resiliparse'] - keep['trafilatura'])}")
    both = [u for u, _ in pages if u in texts["trafilatura"] and u in texts["resiliparse"]]
    sample = random.Random(0).sample(both, min(args.pages, len(both)))
    scores = sorted((f1(texts["trafilatura"][u], texts["resiliparse"][u]), u) for u in sample)
    vals = [s for s, _ in scores]
    print(f"token F1 on {len(vals)} pages: mean {sum(vals) / len(vals):.3f}, median {vals[len(vals) // 2]:.3f}, "
          f"< 0.8: {sum(v < 0.8 for v in vals)}, < 0.5: {sum(v < 0.5 for v in vals)}")
    for score, u in scores[: args.show]:
        show(u, score, texts["trafilatura"][u], texts["resiliparse"][u])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
