"""A small curated corpus of real text for the checks/tokenizer/packing tests.

The corpus is built the way docs/CONTRACTS.md describes `data/curated/*.parquet`
(id, url, source, language, text, split), from real documentation shipped by Debian
packages on this machine: the Python 3.11 reStructuredText sources (English) and the
Debian Administrator's Handbook in German and French (HTML, tags stripped). It does
not depend on the curate stage, so these tests run before any pipeline output exists.
Without those packages it falls back to the committed sample crawl (data/sample/crawl).
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PYDOC = Path("/usr/share/doc/python3.11-doc/html/_sources")
HANDBOOK = Path("/usr/share/doc/debian-handbook/html")
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "crawl"


def _html_text(html: bytes) -> str:
    import lxml.html

    root = lxml.html.fromstring(html)
    for bad in root.xpath("//script|//style"):
        bad.drop_tree()
    return re.sub(r"\n\s*\n+", "\n\n", root.text_content()).strip()


def _warc_docs(limit: int) -> list[dict]:
    from warcio.archiveiterator import ArchiveIterator

    docs: list[dict] = []
    files = sorted(SAMPLE.glob("*.warc.gz"))
    for f in files:
        quota = len(docs) + limit // max(len(files), 1)
        with open(f, "rb") as fh:
            for r in ArchiveIterator(fh):
                if r.rec_type != "response" or len(docs) >= quota:
                    continue
                url = r.rec_headers.get_header("WARC-Target-URI")
                m = re.search(r"/browse/([a-z]{2})-[A-Z]{2}/", url)
                src = "handbook" if m else "pydoc"
                lang = m.group(1) if m else "en"
                if lang in ("en", "de", "fr"):
                    docs.append({"url": url, "source": src, "language": lang,
                                 "text": _html_text(r.content_stream().read())[:20000]})
    return docs


def _docs(n_py: int = 60, n_hb: int = 20) -> list[dict]:
    docs = []
    py = sorted(PYDOC.rglob("*.rst.txt"))[:n_py]
    for p in py:
        docs.append({"url": f"file://{p}", "source": "pydoc", "language": "en",
                     "text": p.read_text(errors="replace")[:20000]})
    for lang, loc in (("de", "de-DE"), ("fr", "fr-FR")):
        for p in sorted((HANDBOOK / loc).glob("*.html"))[:n_hb]:
            docs.append({"url": f"file://{p}", "source": "handbook", "language": lang,
                         "text": _html_text(p.read_bytes())[:20000]})
    if len(docs) < 40:  # Debian doc packages absent: use the committed sample crawl instead
        docs = _warc_docs(n_py + 2 * n_hb)
    if len(docs) < 40:
        pytest.fail("no real text for the fixture: install python3.11-doc and debian-handbook "
                    "or build data/sample/crawl (scripts in the repo)")
    email = re.compile(r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}")
    for d in docs:
        d["text"] = email.sub("email@example.com", d["text"])  # what curation's PII step does
        d["id"] = hashlib.sha1(d["url"].encode()).hexdigest()[:16]
        d["split"] = "val" if int(d["id"], 16) % 10 == 0 else "train"
    return [d for d in docs if len(d["text"]) >= 200]


def write_curated(docs: list[dict], out: Path, shards: int = 2) -> Path:
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    cols = ["id", "url", "source", "language", "text", "split"]
    for i in range(shards):
        part = docs[i::shards]
        pd.DataFrame(part, columns=cols).to_parquet(out / f"part-{i:05d}.parquet", index=False)
    return out
