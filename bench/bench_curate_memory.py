"""The curate stage's memory on pages with long unique text (issue 22, item 13).

Not part of CI (minutes). Builds a crawl from the sample crawl's HTML pages (data/sample/crawl,
handbook and Python docs) repeated ``copies`` times, each copy with its own long paragraph of
``words`` words of real vocabulary (drawn per copy, so no copy is a duplicate of another), as
gzip WARC shards. Then ``run_curate`` (local executor, ``data.workers`` workers, params.yaml's
filters, no shard cache) curates it in a fresh process, and that process reports:

- the main process's peak RSS (``VmHWM``) before the global step, after each of its phases
  (dedup decisions, decontamination index, kept documents, the tasks' rejected files) and at
  the end, and the peak of Arrow's memory pool;
- the global step's (``finalize``) peak traced memory (tracemalloc, main process only), and
  its top holders by file and line at that peak (``--top N``), read from a snapshot the trace
  takes when a new peak is passed by ``--snap-mb``.

    python bench/bench_curate_memory.py --copies 1 4 8 [--words 400 1600] [--top 8] [--cache]

``--cache`` keeps the shard tasks' results in ``<crawl>/shard-cache`` (keyed by content, settings
and code, lmforge/curation/shard_cache.py), so a rerun on unchanged code measures the global step
alone. ``--top`` traces with tracemalloc, which slows the step many times over.

Each row says how much the step's peak and the main process's peak grow per extra input
document against the first row: a step that holds no per-document text grows by its dedup
index only (4-6 KB a kept document).
"""
from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import time
from pathlib import Path

from _support import REPO  # first: this checkout's lmforge on sys.path (bench/_support.py)

SAMPLE = REPO / "data" / "sample" / "crawl"
PER_SHARD = 250


def sample_pages() -> list[tuple[str, bytes]]:
    from warcio.archiveiterator import ArchiveIterator

    pages = []
    for f in sorted(SAMPLE.glob("*.warc.gz")):
        with open(f, "rb") as fh:
            pages += [(r.rec_headers.get_header("WARC-Target-URI"), r.content_stream().read())
                      for r in ArchiveIterator(fh) if r.rec_type == "response"]
    return pages


def vocabulary(pages) -> list[str]:
    return sorted({w for _, b in pages for w in re.findall(rb"\b[a-z]{3,9}\b", b[:20000])})


def paragraph(rng: random.Random, vocab: list[bytes], words: int) -> bytes:
    """``words`` words in sentences of 8-16, as HTML paragraphs of about 100 words."""
    out, n = [], 0
    while n < words:
        sent = [rng.choice(vocab) for _ in range(rng.randint(8, 16))]
        out.append(sent[0].capitalize() + b" " + b" ".join(sent[1:]) + b".")
        n += len(sent)
    paras = [b" ".join(out[i:i + 8]) for i in range(0, len(out), 8)]
    return b"".join(b"<p>" + p + b"</p>\n" for p in paras)


def build_crawl(out: Path, copies: int, words: int, seed: int = 0) -> list[Path]:
    """The sample's pages ``copies`` times, each copy with its own paragraph, in WARC shards."""
    from scripts.build_sample_crawl import write_warc

    manifest = out / "crawl.json"
    want = {"copies": copies, "words": words, "seed": seed}
    if manifest.exists() and json.loads(manifest.read_text()) == want:
        return sorted(out.glob("crawl-*.warc.gz"))
    pages = sample_pages()
    vocab, rng, built = vocabulary(pages), random.Random(seed), []
    for c in range(copies):
        for url, body in pages:
            para = paragraph(rng, vocab, words)
            i = body.find(b"<p")
            body = body[:i] + para + body[i:] if i >= 0 else body.replace(b"</body>", para + b"</body>")
            built.append((f"{url}?copy={c}", body))
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("crawl-*.warc.gz"):
        old.unlink()
    for i in range(0, len(built), PER_SHARD):
        write_warc(out / f"crawl-{i // PER_SHARD:05d}.warc.gz", built[i:i + PER_SHARD])
    manifest.write_text(json.dumps(want))
    return sorted(out.glob("crawl-*.warc.gz"))


def hwm_mb() -> float:
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def run_one(crawl: Path, workers: int, top: int, snap_mb: float, cache: bool) -> dict:
    """Curate ``crawl`` in this process; the global step traced."""
    import dataclasses
    import tempfile
    import tracemalloc

    from datatrove.utils.logging import logger

    from lmforge.config import section
    from lmforge.curation import finalize as fin
    from lmforge.curation.curate_config import DataConfig, SourceConfig

    import pyarrow as pa  # after lmforge.curation, which chooses Arrow's allocator

    logger.remove()
    cfg = section(DataConfig, "data", path=str(REPO / "params.yaml"))
    src = SourceConfig("docs", str(crawl / "crawl-*.warc.gz"), "warc")
    c = dataclasses.replace(cfg, sources=[src], workers=workers, review_labels=None,
                            cache_dir=str(crawl / "shard-cache") if cache else None)
    seen: dict = {"snap": None, "snap_peak": 0}
    real = fin.finalize

    def traced(*a, **k):
        seen["before_mb"] = hwm_mb()
        if top:
            tracemalloc.start(4)
        t = time.perf_counter()
        real_add = fin.ChunkedParquet.add

        def add(self, row):  # a snapshot at each new peak (a step of snap_mb), where rows pass
            real_add(self, row)
            peak = tracemalloc.get_traced_memory()[1]
            if top and peak > max(seen["snap_peak"] * 1.05, seen["snap_peak"] + snap_mb * 2**20):
                seen["snap"], seen["snap_peak"] = tracemalloc.take_snapshot(), peak
        fin.ChunkedParquet.add = add
        try:
            return real(*a, **k)
        finally:
            fin.ChunkedParquet.add = real_add
            seen["finalize_s"] = time.perf_counter() - t
            seen["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20 if top else 0.0
            tracemalloc.stop()

    fin.finalize = traced
    phases = {}
    for name in ("decide_duplicates", "decontamination_index", "publish_kept", "publish_task_rejects"):
        def phase(*a, _name=name, _f=getattr(fin, name), **k):
            r = _f(*a, **k)
            phases[_name] = max(phases.get(_name, 0), hwm_mb())
            return r
        setattr(fin, name, phase)
    with tempfile.TemporaryDirectory() as tmp:
        from lmforge.curation.curate import CurateOutputs, run_curate

        out = CurateOutputs(Path(tmp) / "curated", Path(tmp) / "rejected", Path(tmp) / "m.json", Path(tmp) / "f.csv")
        m = run_curate(c, out)
    fin.finalize = real
    holders = []
    if seen["snap"] is not None:
        for s in seen["snap"].statistics("lineno")[:top]:
            f = s.traceback[0]
            holders.append(f"{s.size / 2**20:6.2f} MB {s.count:7d} blocks  {f.filename.split('site-packages/')[-1]}:{f.lineno}")
    return {"docs": m["input"]["documents"], "kept_before_dedup": m["funnel"]["fineweb_quality"],
            "curated": m["curated"]["documents"], "main_before_finalize_mb": seen["before_mb"],
            "main_peak_mb": hwm_mb(), "finalize_traced_peak_mb": seen["traced_peak_mb"],
            "finalize_s": seen["finalize_s"], "holders": holders,
            "curated_chars": m["curated"]["characters"], "phases_mb": phases,
            "arrow_peak_mb": pa.default_memory_pool().max_memory() / 2**20,
            "arrow_pool": pa.default_memory_pool().backend_name}


def main() -> int:
    ap = argparse.ArgumentParser(description="curate memory on repeated pages with long unique paragraphs")
    ap.add_argument("--copies", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--words", type=int, nargs="+", default=[400])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--top", type=int, default=0, help="trace the global step; print its N top holders at its peak")
    ap.add_argument("--cache", action="store_true", help="keep shard results in <crawl>/shard-cache (reruns: finalize only)")
    ap.add_argument("--snap-mb", type=float, default=0.5)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/lmforge-repeated-crawl"))
    ap.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # internal: one crawl, JSON out
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.workers, args.top, args.snap_mb, args.cache)))
        return 0
    rows = []
    for words in args.words:
        for copies in args.copies:
            crawl = args.dir / f"x{copies}-w{words}"
            build_crawl(crawl, copies, words)
            p = subprocess.run([sys.executable, __file__, "--one", str(crawl),
                                "--workers", str(args.workers), "--top", str(args.top), "--snap-mb", str(args.snap_mb),
                                *(["--cache"] if args.cache else [])],
                               capture_output=True, text=True)
            if p.returncode:
                print(p.stderr[-3000:])
                return 1
            r = json.loads(p.stdout.strip().splitlines()[-1])
            r.update(copies=copies, words=words)
            base = rows[0] if rows else r
            extra = max(r["docs"] - base["docs"], 1)
            rows.append(r)
            print(f"x{copies} +{words} words: {r['docs']:5d} pages, {r['kept_before_dedup']:5d} kept by filters, "
                  f"{r['curated']:5d} curated ({r['curated_chars'] / 1e6:.1f} M chars); main peak "
                  f"{r['main_before_finalize_mb']:.0f} -> {r['main_peak_mb']:.0f} MB; finalize traced peak "
                  f"{r['finalize_traced_peak_mb']:.1f} MB in {r['finalize_s']:.1f} s; per extra page vs first row: "
                  f"main {1024 * (r['main_peak_mb'] - base['main_peak_mb']) / extra:.1f} KB, finalize "
                  f"{1024 * (r['finalize_traced_peak_mb'] - base['finalize_traced_peak_mb']) / extra:.1f} KB",
                  flush=True)
            print(f"    Arrow pool ({r['arrow_pool']}) peak {r['arrow_peak_mb']:.0f} MB; main peak after each phase of the global step: "
                  + ", ".join(f"{k} {v:.0f} MB" for k, v in r["phases_mb"].items()))
            for h in r["holders"]:
                print("    " + h)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
