"""Each filter's decision on real pages of the sample crawl, with the reason it gives."""
from __future__ import annotations

import dataclasses

import pytest
from datatrove.data import Document

from lmforge.testing.curate import HANDBOOK, decide, extract

EN = "en-US"
CASES = [  # (page URL, expected first rejection with the committed params, or None = kept)
    (HANDBOOK.format(EN, "sect.apt-frontends.html"), None),
    (HANDBOOK.format(EN, "sect.automatic-upgrades.html"), None),
    (HANDBOOK.format("de-DE", "sect.backup.html"), None),              # de is allowed
    (HANDBOOK.format(EN, "index.html"), None),  # title page and licence; its table of contents is skipped (.toc)
    (HANDBOOK.format(EN, "sect.kali.html"), "gopher_quality:gopher_short_doc"),
    (HANDBOOK.format(EN, "sect.grml.html"), "c4_quality:too_few_sentences"),
    (HANDBOOK.format(EN, "unix-services.html"), "fineweb_quality:char_dup_ratio"),
    (HANDBOOK.format(EN, "sect.filesystem-hierarchy.html"), None),  # Trafilatura's text repeated lines
    (HANDBOOK.format(EN, "sect.apt-cache.html"), "gopher_repetition:duplicated_5_n_grams"),
    (HANDBOOK.format("ru-RU", "sect.apt-frontends.html"), "language:not_allowed_ru"),
    (HANDBOOK.format("ru-RU", "sect.apt-file.html"), None),  # left untranslated: English, kept
]


@pytest.fixture(scope="module")
def texts(pages):
    return {url: extract(pages[url]) for url, _ in CASES} | {
        u: extract(pages[u]) for u in ("https://docs.python.org/3.11/c-api/dict.html",
                                       HANDBOOK.format("de-DE", "sect.hotplug.html"))}


def doc(texts, url) -> Document:
    return Document(text=texts[url], id=url, metadata={"url": url, "source": "test"})


@pytest.mark.parametrize("url,expected", CASES, ids=[u.split("/browse/")[1] for u, _ in CASES])
def test_handbook_decisions(filter_chain, texts, url, expected):
    assert decide(filter_chain("handbook"), doc(texts, url)) == expected


def test_extraction_tidies_whitespace_lines(texts):
    # trafilatura keeps DocBook indentation ("\t\t" lines); Gopher counted them as duplicate lines
    text = texts[HANDBOOK.format(EN, "sect.apt-frontends.html")]
    assert all(line == line.strip() for line in text.splitlines())
    assert "\n\n\n" not in text


def test_german_rejected_when_de_not_allowed(cfg, filter_chain, texts):
    url = HANDBOOK.format("de-DE", "sect.hotplug.html")
    assert decide(filter_chain("handbook"), doc(texts, url)) is None
    en_only = dataclasses.replace(cfg, language=dataclasses.replace(cfg.language, allowed=["en"]))
    d = doc(texts, url)
    assert decide(filter_chain("handbook", en_only), d) == "language:not_allowed_de"
    assert d.metadata["language"] == "de" and d.metadata["language_score"] > 0.9


def test_per_source_override_keeps_api_docs(filter_chain, texts):
    # Python C-API reference repeats its phrasing; the stock repetition thresholds drop it,
    # the pydoc source's overrides in params.yaml keep it.
    url = "https://docs.python.org/3.11/c-api/dict.html"
    assert decide(filter_chain("handbook"), doc(texts, url)) == "gopher_repetition:duplicated_5_n_grams"
    assert decide(filter_chain("pydoc"), doc(texts, url)) is None


def test_url_filter_offline_lists_and_extra_domains(cfg, filter_chain, texts):
    url = HANDBOOK.format(EN, "sect.apt-frontends.html")
    blocked = dataclasses.replace(cfg, url_filter=dataclasses.replace(
        cfg.url_filter, extra_domains=["debian-handbook.info"]))
    uf = filter_chain("handbook", blocked)[0]
    assert uf.name == "url_filter"
    assert decide([uf], doc(texts, url)) == "url_filter:domain"
    assert len(uf.block_listed_domains) > 1000  # datatrove's shipped lists, loaded without network
    assert decide([uf], Document(text="x", id="n", metadata={})) is None  # JSONL/Parquet docs without URL


def test_a_page_with_each_line_twice_fails_gopher_repetition_on_lines(filter_chain, texts):
    lines = [line for line in texts[HANDBOOK.format(EN, "sect.apt-frontends.html")].splitlines() if line.strip()]
    twice = "\n".join(line for line in lines for _ in range(2))  # one paragraph: only lines repeat
    url = HANDBOOK.format(EN, "sect.apt-frontends.html")
    d = Document(text=twice, id=url, metadata={"url": url, "source": "test"})
    assert decide(filter_chain("handbook"), d) == "gopher_repetition:dup_line_frac"


def test_language_model_loads_once_per_process(monkeypatch):
    """datatrove unpickles a fresh pipeline for every task a worker runs: the ~0.75 s model load
    must not come with it (issue 24)."""
    import pickle

    from py3langid.langid import LanguageIdentifier

    from lmforge.curation.filters import language

    loads, real = [], LanguageIdentifier.from_model_file.__func__
    monkeypatch.setattr(LanguageIdentifier, "from_model_file",
                        classmethod(lambda cls, *a, **k: loads.append(a) or real(cls, *a, **k)))
    language._identifier.cache_clear()
    try:
        for _ in range(3):
            task = pickle.loads(pickle.dumps(language.LanguageIDFilter(allowed=["en"], min_score=0.5)))
            assert task.classify("The package manager installs software on the system.")[0] == "en"
    finally:
        language._identifier.cache_clear()
    assert len(loads) == 1


def test_url_suffix_trie_is_built_once_per_process(monkeypatch):
    """As the language model: the public-suffix trie is built once per worker, not per task."""
    import pickle

    import tldextract.tldextract as tld

    from lmforge.curation.filters import url

    builds, real = [], tld.Trie.create
    monkeypatch.setattr(tld.Trie, "create", staticmethod(lambda *a, **k: builds.append(1) or real(*a, **k)))
    url._tld_extractor.cache_clear()
    per_task = []
    try:
        for _ in range(3):
            task = pickle.loads(pickle.dumps(url.OfflineURLFilter()))
            assert task.filter(Document(text="x", id="1", metadata={"url": "https://www.debian.org/doc/"})) is True
            per_task.append(len(builds))
    finally:
        url._tld_extractor.cache_clear()
    assert per_task[0] > 0 and per_task == per_task[:1] * 3   # built by the first task only
