"""Build the committed sample crawl from real HTML shipped by Debian documentation packages.

Why: the curate stage must run on real web-like input by default, offline, in about a minute
on two cores. Debian ships real HTML sites: ``debian-handbook`` (127 pages in 26 locales,
several of them untranslated English copies: natural near-duplicates whose URL claims one
language while the text is another) and ``python3.11-doc`` (about 530 pages). This script
picks a seeded, deterministic subset of those pages and writes them as CommonCrawl-style gzip
WARC shards: one ``warcinfo`` record, then ``response`` records with HTTP headers,
``WARC-Target-URI`` and ``WARC-Identified-Payload-Type: text/html`` (without that header
datatrove sniffs the MIME type, and the handbook's XHTML with its ``<?xml?>`` prolog sniffs
as text/xml and is silently dropped). So that the JSONL and Parquet readers are exercised
too, it also writes one JSONL shard of plain-text reStructuredText sources of Python doc
pages that are *not* in the WARC shards, and one Parquet shard of Debian ``fortunes`` pages.

Output is byte-for-byte reproducible (fixed record ids and dates, gzip mtime 0).

    python scripts/build_sample_crawl.py            # writes data/sample/crawl/
    python scripts/build_sample_crawl.py --scale 2  # twice as many pages (opt-in, not committed)
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import sys
import uuid
from pathlib import Path

HANDBOOK = Path("/usr/share/doc/debian-handbook/html")
PYDOC = Path("/usr/share/doc/python3.11/html")
FORTUNES = Path("/usr/share/games/fortunes")
DATE = "2024-06-01T00:00:00Z"
HTTP_DATE = "Sat, 01 Jun 2024 00:00:00 GMT"
# handbook locale -> pages taken. Translated: en, de, fr, es (allowed by default), ru, ja, zh
# (rejected by the default language filter); untranslated English copies: da, ro.
HANDBOOK_LOCALES = {"en-US": 100, "de-DE": 45, "fr-FR": 45, "es-ES": 30, "da-DK": 40,
                    "ro-RO": 25, "ru-RU": 15, "ja-JP": 15, "zh-CN": 15}
PYDOC_PAGES = 270
PYDOC_MAX_BYTES = 120_000  # skip the few giant reference pages: keeps the sample small and fast
JSONL_DOCS = 50
FORTUNE_FILES = ["computers", "science", "linux", "literature", "education", "work", "wisdom"]
FORTUNES_PER_DOC = 8
FORTUNE_DOCS = 60


def record_id(url: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, url)}>"


def write_warc(path: Path, pages: list[tuple[str, bytes]]) -> None:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True)
    info = json.dumps({"software": "lmforge/scripts/build_sample_crawl.py",
                       "description": "Debian documentation pages as a sample crawl"}).encode()
    writer.write_record(writer.create_warc_record(
        path.name, "warcinfo", payload=io.BytesIO(info), length=len(info),
        warc_content_type="application/json",
        warc_headers_dict={"WARC-Record-ID": record_id("warcinfo:" + path.name), "WARC-Date": DATE}))
    for url, body in pages:
        http = StatusAndHeaders("200 OK", [
            ("Content-Type", "text/html; charset=UTF-8"),
            ("Content-Length", str(len(body))),
            ("Date", HTTP_DATE),
            ("Server", "Apache"),
        ], protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(
            url, "response", payload=io.BytesIO(body), length=len(body), http_headers=http,
            warc_headers_dict={
                "WARC-Record-ID": record_id(url),
                "WARC-Date": DATE,
                "WARC-Target-URI": url,
                "WARC-Identified-Payload-Type": "text/html",
            }))
    path.write_bytes(buf.getvalue())


def handbook_pages(rng: random.Random, scale: float) -> list[tuple[str, bytes]]:
    pages = []
    for locale, n in HANDBOOK_LOCALES.items():
        files = sorted((HANDBOOK / locale).glob("*.html"))
        pick = rng.sample(files, min(len(files), round(n * scale)))
        for f in sorted(pick):
            url = f"https://debian-handbook.info/browse/{locale}/stable/{f.name}"
            pages.append((url, f.read_bytes()))
    return pages


def pydoc_candidates() -> list[Path]:
    skip = ("genindex", "search.html", "py-modindex", "_static", "_sources", "_images", "_downloads")
    return [p for p in sorted(PYDOC.rglob("*.html"))
            if not any(s in str(p) for s in skip) and p.stat().st_size <= PYDOC_MAX_BYTES]


def pydoc_pages(files: list[Path]) -> list[tuple[str, bytes]]:
    return [(f"https://docs.python.org/3.11/{f.relative_to(PYDOC)}", f.read_bytes()) for f in files]


def shard(pages: list, n: int, rng: random.Random) -> list[list]:
    pages = pages[:]
    rng.shuffle(pages)
    return [pages[i::n] for i in range(n)]


def jsonl_docs(files: list[Path]) -> list[dict]:
    docs = []
    for f in files:
        rel = f.relative_to(PYDOC).with_suffix("")
        src = PYDOC / "_sources" / f"{rel}.rst.txt"
        if src.exists():
            docs.append({"id": f"pydoc-rst/{rel}", "url": f"https://docs.python.org/3.11/_sources/{rel}.rst.txt",
                         "text": src.read_text(encoding="utf-8")})
    return docs


def read_fortunes(name: str) -> list[str]:
    raw = (FORTUNES / name).read_text(encoding="utf-8", errors="replace")
    return [f.strip() for f in raw.split("\n%\n") if f.strip()]


def fortune_docs(rng: random.Random, n_docs: int) -> list[dict]:
    docs = []
    names = [n for n in FORTUNE_FILES if (FORTUNES / n).exists()]
    for name in names:
        items = read_fortunes(name)
        for start in range(0, len(items) - FORTUNES_PER_DOC + 1, FORTUNES_PER_DOC):
            docs.append((name, start, "\n\n".join(items[start:start + FORTUNES_PER_DOC])))
    docs = rng.sample(docs, min(n_docs, len(docs)))
    return [{"id": f"fortunes/{name}/{start:05d}", "url": None, "text": text}
            for name, start, text in sorted(docs)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/sample/crawl")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply page counts (default sample: 1)")
    ap.add_argument("--shards", type=int, default=2, help="WARC shards per site")
    args = ap.parse_args(argv)
    for d in (HANDBOOK, PYDOC, FORTUNES):
        if not d.is_dir():
            sys.exit(f"{d}: not found; install the Debian packages debian-handbook python3.11-doc fortunes")
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*"):
        if old.is_file():
            old.unlink()

    for i, pages in enumerate(shard(handbook_pages(rng, args.scale), args.shards, rng)):
        write_warc(out / f"handbook-{i:05d}.warc.gz", pages)
    cands = pydoc_candidates()
    rng.shuffle(cands)
    n_html = min(len(cands), round(PYDOC_PAGES * args.scale))
    html_files, rest = sorted(cands[:n_html]), sorted(cands[n_html:])
    for i, pages in enumerate(shard(pydoc_pages(html_files), args.shards, rng)):
        write_warc(out / f"pydoc-{i:05d}.warc.gz", pages)
    # JSONL: plain-text sources of pages NOT in the WARC shards (no planted overlap)
    jdocs = jsonl_docs(rng.sample(rest, min(len(rest), round(JSONL_DOCS * args.scale))))
    (out / "pydoc-rst-00000.jsonl").write_text(
        "".join(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n" for d in jdocs), encoding="utf-8")
    fdocs = fortune_docs(rng, round(FORTUNE_DOCS * args.scale))
    table = pa.Table.from_pylist(fdocs, schema=pa.schema(
        [("id", pa.string()), ("url", pa.string()), ("text", pa.string())]))
    pq.write_table(table, out / "fortunes-00000.parquet", compression="zstd")

    total = 0
    for f in sorted(out.iterdir()):
        size = f.stat().st_size
        total += size
        print(f"{f}  {size / 1e6:.2f} MB  sha256={hashlib.sha256(f.read_bytes()).hexdigest()[:12]}")
    print(f"total {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
