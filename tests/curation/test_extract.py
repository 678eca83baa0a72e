"""The extraction step of HTML sources: Resiliparse beside Trafilatura, same contract."""
from __future__ import annotations

import re

from lmforge.testing.curate import HANDBOOK


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def test_resiliparse_extracts_the_page_text_and_rejects_empty_pages(pages, tmp_path):
    import pyarrow.parquet as pq
    from datatrove.data import Document

    from lmforge.curation.work import WorkWriter
    from lmforge.curation.curate_config import ExtractConfig
    from lmforge.curation.extract import ResiliparseExtractor, make_extractor

    url = HANDBOOK.format("en-US", "sect.apt-frontends.html")
    docs = [Document(text=pages[url].decode(), id="page", metadata={"url": url}),
            Document(text="<html><head><script>var x = 1;</script></head><body></body></html>", id="blank",
                     metadata={"url": "https://example.org/blank"})]
    step = make_extractor(ExtractConfig(engine="resiliparse"), WorkWriter(str(tmp_path / "rej"), step="extract"))
    assert isinstance(step, ResiliparseExtractor)
    out = list(step.run(iter(docs)))
    assert [d.id for d in out] == ["page"]
    text = out[0].text
    assert "aptitude" in text and "<" not in text and "\n\n\n" not in text
    assert "var x" not in text
    trafilatura = make_extractor(ExtractConfig(engine="trafilatura"), None)
    other = next(trafilatura.run(iter([Document(text=pages[url].decode(), id="page", metadata={"url": url})])))
    shared = words(text) & words(other.text)
    assert len(shared) >= 0.8 * len(words(other.text))  # Resiliparse keeps what Trafilatura keeps, and more
    rej = pq.read_table(tmp_path / "rej").to_pylist()
    assert [(r["id"], r["reason"]) for r in rej] == [("blank", "extract:empty")]
    assert step.stats["dropped_empty"].total == 1 and step.stats["forwarded"].total == 1


def test_resiliparse_skips_page_furniture_by_selector_and_keeps_content_boxes(pages):
    """The default skip list takes the chapter's table of contents out of a DocBook page;
    a DocBook sidebar (a content box, not navigation) stays."""
    from lmforge.curation.curate_config import ExtractConfig
    from lmforge.curation.extract import make_extractor

    chapter = pages[HANDBOOK.format("en-US", "apt.html")].decode()
    plain = make_extractor(ExtractConfig(engine="resiliparse", skip_elements=[]), None).extract(chapter)
    text = make_extractor(ExtractConfig(engine="resiliparse"), None).extract(chapter)
    toc = [line for line in plain.splitlines() if re.fullmatch(r"6\.\d+(\.\d+)?\. .+", line.strip())]
    assert len(toc) >= 10                       # the table of contents is there without the skip list
    assert not any(line in text.splitlines() for line in toc[1:])
    assert text.splitlines()[0] == plain.splitlines()[0]    # the chapter title and its prose remain
    assert len(text) > 0.8 * len(plain)
    boxed = pages[HANDBOOK.format("de-DE", "sect.x509-cert.html")].decode()
    assert "Let's Encrypt Initiative" in make_extractor(ExtractConfig(engine="resiliparse"), None).extract(boxed)
