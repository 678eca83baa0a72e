"""Incremental shards: curating a source after one shard was added, against curating that shard alone.

A WARC source of 11 shards is cut from the sample crawl's real pages (handbook and Python docs,
``--pages`` per shard). Measured in one run, each a full ``run_curate`` (executor start,
filters, global step):

- ``ten``: the first 10 shards, empty cache (fills it; also warms the process's imports);
- ``alone``: the 11th shard as the only shard of the source, empty cache (the baseline);
- ``added``: all 11 shards with that cache: only the new shard is filtered, then the global
  step (dedup and publishing) runs over all 11;
- ``scratch``: all 11 shards, empty cache; its outputs must equal ``added``'s.

Printed: seconds, the global step's seconds, and ``added / alone``; the goal is at most 1.5x,
plus dedup (the global step's growth with the corpus). Outputs of ``added`` and ``scratch``
differ only if a page's extraction timed out in one run and not the other (``extract`` in
``rejected_by_step``; Trafilatura's per-page timeout, ``data.extract.timeout``, fires on an
overloaded machine, and a shard with a timeout is not cached, so ``added`` runs it again);
``--extract-timeout`` (default 60 s, in every run) keeps that noise out of the figure.

    python bench/bench_curate_incremental.py [--pages 16] [--extract-timeout 60]
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

from _support import REPO  # first: this checkout's lmforge on sys.path (bench/_support.py)


def pages() -> list[tuple[str, bytes]]:
    from lmforge.testing.curate import read_warc_pages

    return list(read_warc_pages().items())


def write_shards(folder: Path, n_pages: int) -> None:
    spec = importlib.util.spec_from_file_location("build_sample_crawl", REPO / "scripts" / "build_sample_crawl.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ps = pages()
    for i in range(11):
        (folder / ("new" if i == 10 else "old")).mkdir(parents=True, exist_ok=True)
        mod.write_warc(folder / ("new" if i == 10 else "old") / f"web-{i:05d}.warc.gz", ps[i::11][:n_pages])


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def curate(cfg, tmp: Path, name: str, paths: str, cache: str) -> dict:
    from lmforge.curation import finalize as fz
    from lmforge.curation.curate import CurateOutputs, run_curate

    spent = []
    real = fz.finalize

    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return real(*a, **k)
        finally:
            spent.append(time.perf_counter() - t)

    fz.finalize = timed
    src = dataclasses.replace(cfg.sources[0], name="web", path=paths)
    c = dataclasses.replace(cfg, sources=[src], review_labels=None, cache_dir=str(tmp / cache))
    out = CurateOutputs(tmp / name / "curated", tmp / name / "rejected", tmp / name / "m.json", tmp / name / "f.csv")
    t = time.perf_counter()
    try:
        m = run_curate(c, out)
    finally:
        fz.finalize = real
    return {"seconds": round(time.perf_counter() - t, 2), "global_step_s": round(spent[0], 2),
            "processed": len(m["shards"]["processed"]), "cached": len(m["shards"]["cached"]),
            "documents": m["input"]["documents"], "curated": m["curated"]["documents"],
            "rejected_by_step": m["rejected"]["by_reason"],
            "outputs": (digests(out.curated), digests(out.rejected), out.metrics.read_text())}


def main(argv: list[str] | None = None) -> int:
    import os

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=16, help="pages per shard")
    ap.add_argument("--extract-timeout", type=float, default=60.0, help="data.extract.timeout for every run")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lmforge.config import load_params, section
    from lmforge.curation.curate_config import DataConfig

    cfg = section(DataConfig, "data", load_params(REPO / "params.yaml"))
    cfg = dataclasses.replace(cfg, extract=dataclasses.replace(cfg.extract, timeout=args.extract_timeout))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        write_shards(tmp / "in", args.pages)
        r = {"ten": curate(cfg, tmp, "ten", str(tmp / "in" / "old" / "web-*.warc.gz"), "c"),
             "alone": curate(cfg, tmp, "alone", str(tmp / "in" / "new" / "web-*.warc.gz"), "c-alone")}
        (tmp / "in" / "new" / "web-00010.warc.gz").rename(tmp / "in" / "old" / "web-00010.warc.gz")
        r["added"] = curate(cfg, tmp, "added", str(tmp / "in" / "old" / "web-*.warc.gz"), "c")
        r["scratch"] = curate(cfg, tmp, "scratch", str(tmp / "in" / "old" / "web-*.warc.gz"), "c-scratch")
    same = r["added"].pop("outputs") == r["scratch"].pop("outputs")
    for k in ("alone", "ten"):
        r[k].pop("outputs")
    r["added_equals_scratch"] = same
    r["added/alone"] = round(r["added"]["seconds"] / r["alone"]["seconds"], 2)
    r["added/scratch"] = round(r["added"]["seconds"] / r["scratch"]["seconds"], 2)
    r["added_minus_global_step/alone"] = round(
        (r["added"]["seconds"] - r["added"]["global_step_s"] + r["alone"]["global_step_s"]) / r["alone"]["seconds"], 2)
    print(json.dumps(r, indent=1))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
