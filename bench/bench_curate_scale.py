"""Curation at several sizes: docs/s, CPU-ms per document, peak RSS per process, growth exponents.

Not part of CI (minutes to an hour). Builds a crawl of real HTML from Debian documentation
packages (Rust, Django, PostgreSQL, the Debian handbook, Python; installed with apt-get when
missing and run as root), as gzip WARC shards of 250 pages, then runs the curate stage's
library (``run_curate``, local executor, ``data.workers`` workers, params.yaml's filters and the
handbook source's settings) on the first N pages for each size, each size in a fresh process
so that its resource counters are its own, with no shard cache (``data.cache_dir``). Printed
per size: wall seconds, docs/s, CPU-ms per document (main process and workers), peak RSS of
the main process and of the largest worker; then the growth exponent k of time and memory
between sizes (t ~ N^k: 1 is linear, 0 flat).

    python bench/bench_curate_scale.py --sizes 1000 4000 [16000] [--extract resiliparse] [--recipe-up-to 4000]

``--recipe-up-to N`` also runs datatrove's FineWeb recipe (``bench/bench_vs_fineweb.py``) on the
same pages at every size up to N, right after lmforge's run, and prints the ratios.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata  # noqa: F401
import json
import math
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _support import REPO  # first: this checkout's lmforge on sys.path (bench/_support.py)

PACKAGES = {"rust-doc": "/usr/share/doc/rust-doc/html", "python-django-doc": "/usr/share/doc/python-django-doc/html",
            "postgresql-doc-15": "/usr/share/doc/postgresql-doc-15/html",
            "debian-handbook": "/usr/share/doc/debian-handbook/html", "python3.11-doc": "/usr/share/doc/python3.11/html"}
PER_SHARD, MAX_BYTES = 250, 400_000
ORDER = "round-robin, then shuffled"   # how build_crawl orders pages (crawl.json)


def ensure_packages(install: bool = True) -> None:
    missing = [p for p, d in PACKAGES.items() if not Path(d).is_dir()]
    if missing and install and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing], check=False)


def build_crawl(n: int, out: Path, seed: int = 0, install: bool = True) -> list[Path]:
    """``n`` pages as WARC shards in ``out`` (reused if built the same way with at least ``n``).

    Pages are drawn round-robin over the packages, then shuffled (fixed seed): the packages
    differ in size (rust-doc has 32k pages, python3.11-doc 521), so an unshuffled crawl ends in
    rustdoc stubs and its first 1,000 pages are not the same kind of crawl as its 16,000. After
    the shuffle every prefix has the same mix, and times at different sizes compare."""
    from scripts.build_sample_crawl import write_warc

    manifest = out / "crawl.json"
    built = json.loads(manifest.read_text()) if manifest.exists() else {}
    if built.get("order") == ORDER and built.get("pages", 0) >= n and "digest" in built:
        return sorted(out.glob("crawl-*.warc.gz"))
    ensure_packages(install)
    rng = random.Random(seed)
    pools = []
    for pkg, d in PACKAGES.items():
        files = [f for f in sorted(Path(d).rglob("*.html")) if f.is_file() and f.stat().st_size <= MAX_BYTES]
        rng.shuffle(files)
        pools.append((pkg, Path(d), files))
    pages = []
    while len(pages) < n and any(files for _, _, files in pools):
        for pkg, root, files in pools:
            if files and len(pages) < n:
                f = files.pop()
                pages.append((f"https://{pkg}.debian.example/{f.relative_to(root)}", f.read_bytes()))
    rng.shuffle(pages)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("crawl-*.warc.gz"):  # this bench's own shards only
        old.unlink()
    for i in range(0, len(pages), PER_SHARD):
        write_warc(out / f"crawl-{i // PER_SHARD:05d}.warc.gz", pages[i:i + PER_SHARD])
    digest = hashlib.sha256()
    for url, body in pages:
        digest.update(url.encode() + b"\0" + hashlib.sha256(body).digest())
    manifest.write_text(json.dumps({"order": ORDER, "pages": len(pages), "seed": seed,
                                    "digest": digest.hexdigest()[:16]}))
    return sorted(out.glob("crawl-*.warc.gz"))


def crawl_id(out: Path) -> str:
    """"N pages, digest D" of a crawl build_crawl made: the crawl is built from the Debian
    packages installed here, so figures compare only between runs that print the same digest."""
    built = json.loads((out / "crawl.json").read_text())
    return f"{built['pages']} pages, digest {built['digest']}"


class TreeSampler:
    """Peak RSS and CPU time of every process under this one, sampled twice a second.

    ``RUSAGE_CHILDREN`` misses datatrove's pool workers (not reaped by a wait), so the
    workers are read with psutil while they live; CPU of a worker is its last sample."""

    def __init__(self):
        import threading

        self.rss: dict[int, int] = {}
        self.cpu: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        import psutil

        me = psutil.Process()
        while not self.stop.wait(0.5):
            for p in me.children(recursive=True):
                try:
                    self.rss[p.pid] = max(self.rss.get(p.pid, 0), p.memory_info().rss)
                    t = p.cpu_times()
                    self.cpu[p.pid] = t.user + t.system
                except psutil.Error:
                    pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def link_shards(crawl: Path, n: int, listing: Path) -> Path:
    """A folder of links to the shards that hold the crawl's first ``n`` pages."""
    listing.mkdir()
    for f in sorted(crawl.glob("crawl-*.warc.gz"))[: math.ceil(n / PER_SHARD)]:
        (listing / f.name).symlink_to(f)
    return listing


def run_one(n: int, crawl: Path, extract: str, engine: str, workers: int) -> dict:
    """Curate the shards holding the first ``n`` pages; resource use of this process and its children."""
    import dataclasses
    import tempfile

    from datatrove.utils.logging import logger

    from lmforge.config import section
    from lmforge.curation.curate import CurateOutputs, run_curate
    from lmforge.curation.curate_config import DataConfig, SourceConfig

    import pyarrow.parquet as pq  # after lmforge.curation, which chooses Arrow's allocator

    logger.remove()
    cfg = section(DataConfig, "data", path=str(REPO / "params.yaml"))
    with tempfile.TemporaryDirectory() as tmp:
        listing = link_shards(crawl, n, Path(tmp) / "in")
        src = SourceConfig("docs", str(listing / "*.warc.gz"), "warc")
        c = dataclasses.replace(cfg, sources=[src], workers=workers, review_labels=None, cache_dir=None,
                                extract=dataclasses.replace(cfg.extract, engine=extract),
                                dedup=dataclasses.replace(cfg.dedup, engine=engine))
        out = CurateOutputs(Path(tmp) / "curated", Path(tmp) / "rejected", Path(tmp) / "m.json", Path(tmp) / "f.csv")
        t = time.perf_counter()
        with TreeSampler() as tree:
            m = run_curate(c, out)
        wall = time.perf_counter() - t
        words = sum(len(x.split()) for x in pq.read_table(out.curated, columns=["text"]).column("text").to_pylist())
    own = resource.getrusage(resource.RUSAGE_SELF)
    return {"docs": m["input"]["documents"], "curated": m["curated"]["documents"], "curated_words": words, "wall_s": wall,
            "cpu_s": own.ru_utime + own.ru_stime + sum(tree.cpu.values()),
            "main_rss_mb": own.ru_maxrss / 1024, "worker_rss_mb": max(tree.rss.values(), default=0) / 2**20}


def startup(args, n: int = 10, runs: int = 2) -> int:
    """The fixed start-up: a fresh process curating a 10-page shard, timed from its exec to its exit."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        crawl = Path(tmp) / "crawl"
        crawl.mkdir()
        from scripts.build_sample_crawl import write_warc
        from warcio.archiveiterator import ArchiveIterator

        with open(sorted(args.crawl.glob("crawl-*.warc.gz"))[0], "rb") as f:
            pages = [(r.rec_headers.get_header("WARC-Target-URI"), r.content_stream().read())
                     for r in ArchiveIterator(f) if r.rec_type == "response"][:n]
        write_warc(crawl / "crawl-00000.warc.gz", pages)
        for i in range(runs):
            t = time.perf_counter()
            p = subprocess.run([sys.executable, __file__, "--one", str(n), "--crawl", str(crawl), "--extract",
                                args.extract, "--dedup-engine", args.dedup_engine, "--workers", str(args.workers)],
                               capture_output=True, text=True, check=True)
            total = time.perf_counter() - t
            r = json.loads(p.stdout.strip().splitlines()[-1])
            print(f"start-up run {i + 1}: {total:5.1f} s process wall ({r['wall_s']:5.1f} s in run_curate, "
                  f"{r['cpu_s']:5.1f} CPU-s, main {r['main_rss_mb']:4.0f} MB, worker {r['worker_rss_mb']:4.0f} MB), "
                  f"{r['docs']} pages", flush=True)
    return 0


def exponent(a: dict, b: dict, key: str) -> float:
    return math.log(b[key] / a[key]) / math.log(b["docs"] / a["docs"])


def main() -> int:
    ap = argparse.ArgumentParser(description="curate at several sizes")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    ap.add_argument("--crawl", type=Path, default=Path("/tmp/lmforge-debian-crawl"))
    ap.add_argument("--extract", default="trafilatura", choices=["trafilatura", "resiliparse"])
    ap.add_argument("--dedup-engine", default="datasketch", choices=["datasketch", "datatrove"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-install", action="store_true", help="build the crawl from the packages installed")
    ap.add_argument("--startup", action="store_true", help="only the fixed start-up: a 10-page crawl, end to end")
    ap.add_argument("--recipe-up-to", type=int, default=0,
                    help="also run datatrove's FineWeb recipe (bench_vs_fineweb.py) at sizes up to this, same run")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one size, JSON out
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.crawl, args.extract, args.dedup_engine, args.workers)))
        return 0
    build_crawl(max(args.sizes), args.crawl, install=not args.no_install)
    if args.startup:
        return startup(args)
    rows = []
    print(f"extract {args.extract}, dedup {args.dedup_engine}, {args.workers} workers, crawl {args.crawl} "
          f"({crawl_id(args.crawl)})")
    for n in args.sizes:
        p = subprocess.run([sys.executable, __file__, "--one", str(n), "--crawl", str(args.crawl), "--extract",
                            args.extract, "--dedup-engine", args.dedup_engine, "--workers", str(args.workers)],
                           capture_output=True, text=True, check=True)
        r = json.loads(p.stdout.strip().splitlines()[-1])
        rows.append(r)
        print(f"{r['docs']:6d} docs  {r['wall_s']:7.1f} s  {r['docs'] / r['wall_s']:6.1f} docs/s  "
              f"{1000 * r['cpu_s'] / r['docs']:6.1f} CPU-ms/doc  main peak {r['main_rss_mb']:6.0f} MB  "
              f"worker peak {r['worker_rss_mb']:6.0f} MB  curated {r['curated']}", flush=True)
        if n <= args.recipe_up_to:
            q = subprocess.run([sys.executable, str(Path(__file__).with_name("bench_vs_fineweb.py")), "--one",
                                "fineweb-recipe", "--docs", str(n), "--crawl", str(args.crawl), "--workers",
                                str(args.workers)], capture_output=True, text=True, check=True)
            b = json.loads(q.stdout.strip().splitlines()[-1])
            print(f"{b['docs']:6d} docs  {b['wall_s']:7.1f} s  {b['docs'] / b['wall_s']:6.1f} docs/s  "
                  f"{1000 * b['cpu_s'] / b['docs']:6.1f} CPU-ms/doc  (datatrove's FineWeb recipe, kept {b['curated']}); "
                  f"lmforge: {b['wall_s'] / r['wall_s']:.2f}x its throughput, {b['cpu_s'] / r['cpu_s']:.2f}x less CPU",
                  flush=True)
    for a, b in zip(rows, rows[1:]):
        print(f"growth {a['docs']} -> {b['docs']}: time k={exponent(a, b, 'cpu_s'):.2f}, "
              f"main RSS k={exponent(a, b, 'main_rss_mb'):.2f}, worker RSS k={exponent(a, b, 'worker_rss_mb'):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
