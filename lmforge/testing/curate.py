"""Real inputs for the curate tests, taken from the committed sample crawl (data/sample/crawl).

Why a helper module: tests need the same few real pages (Debian handbook, Python docs) in
several forms (raw HTML, extracted text, small WARC/JSONL/Parquet shards) and should not
depend on the Debian packages being installed on the test machine.
"""
from __future__ import annotations

import functools
import io
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample" / "crawl"
HANDBOOK = "https://debian-handbook.info/browse/{}/stable/{}"


def read_warc_pages(pattern: str = "*.warc.gz") -> dict[str, bytes]:
    from warcio.archiveiterator import ArchiveIterator

    pages = {}
    for f in sorted(SAMPLE.glob(pattern)):
        with open(f, "rb") as fh:
            for rec in ArchiveIterator(fh):
                if rec.rec_type == "response":
                    pages[rec.rec_headers.get_header("WARC-Target-URI")] = rec.content_stream().read()
    return pages


def write_warc(path: Path, pages: list[tuple[str, bytes]]) -> Path:
    """A small CommonCrawl-style shard, written the way scripts/build_sample_crawl.py does."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_sample_crawl", REPO / "scripts" / "build_sample_crawl.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    path.parent.mkdir(parents=True, exist_ok=True)
    mod.write_warc(path, pages)
    return path


def jsonl_docs() -> list[dict]:
    return [json.loads(line) for line in (SAMPLE / "pydoc-rst-00000.jsonl").read_text().splitlines()]


def fortune_docs() -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(SAMPLE / "fortunes-00000.parquet").to_pylist()


@functools.lru_cache(maxsize=1)
def _extractor():
    from lmforge.config import section
    from lmforge.curation.curate_config import DataConfig
    from lmforge.curation.extract import make_extractor

    return make_extractor(section(DataConfig, "data", path=str(REPO / "params.yaml")).extract, None)


def extract(html: bytes) -> str:
    """The text the pipeline's extraction step (params.yaml's ``data.extract``) produces for one page."""
    from lmforge.curation.extract import tidy

    return tidy(_extractor().extract(html.decode("utf-8")) or "")


def sample_texts(pages: int, docs: int) -> list[str]:
    """The extracted texts of the first ``pages`` handbook pages and the first ``docs`` pydoc
    documents of the sample crawl, empty ones dropped: the filters' real inputs in tests."""
    html = list(read_warc_pages("handbook-00000.warc.gz").values())[:pages]
    return [t for t in [extract(h) for h in html] + [d["text"] for d in jsonl_docs()[:docs]] if t]


def truncated(data: bytes, frac: float = 0.5) -> bytes:
    return io.BytesIO(data).read(int(len(data) * frac))


def decide(filters, doc) -> str | None:
    """First rejecting filter as 'step:reason', or None if every filter keeps the document."""
    from datatrove.pipeline.filters.base_filter import get_filter_result

    for f in filters:
        ok, reason = get_filter_result(f.filter(doc))
        if not ok:
            return f"{f.name}:{reason}" if reason else f.name
    return None
