"""URL filtering offline: datatrove's URLFilter without network access and without 400 MB of sets.

tldextract uses its bundled suffix-list snapshot (the default fetches the list from the
internet), documents without a URL (JSONL/Parquet sources) pass instead of failing an
assert, and the big block lists are hashed lists on disk (``curation.url_lists``), loaded
once per worker process.
"""
from __future__ import annotations

import functools

from datatrove.pipeline.filters import URLFilter

from lmforge.curation import dependency_check  # noqa: F401  (datatrove's step checks, without a scan)

_URL_LISTS: dict = {}  # per-process cache of URLFilter block lists


@functools.cache
def _tld_extractor():
    """One offline TLDExtract per process: it builds its suffix trie on first use, which every
    task (a freshly unpickled filter) would otherwise do again."""
    from tldextract import TLDExtract

    return TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


class OfflineURLFilter(URLFilter):
    """URLFilter with the bundled public-suffix snapshot; URL-less documents pass."""

    name = "url_filter"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.tldextractor = _tld_extractor()

    def download_data(self):
        """Load the shipped block lists once per worker process, not once per task; the two big
        ones (4.6 million domains, 20 thousand URLs) as hashed lists on disk (``url_lists``)."""
        if self._downloaded:
            return
        self.tldextractor = _tld_extractor()   # this process's, its trie built once
        if not self.use_integrated_lists:
            self._downloaded = True
            return
        key = (frozenset(self.block_listed_domains), frozenset(self.block_listed_url),
               frozenset(self.banned_words), frozenset(self.banned_subwords), frozenset(self.soft_banned_words))
        if key not in _URL_LISTS:
            from datatrove.pipeline.filters.url_filter import ASSETS_PATH, get_list

            from lmforge.curation.url_lists import HashedList, extracted_folder

            folder = extracted_folder()
            self.block_listed_domains = HashedList.load(folder, "domains", self.block_listed_domains)
            self.block_listed_url = HashedList.load(folder, "urls", self.block_listed_url)
            self.banned_words = get_list(ASSETS_PATH, "banned_words.txt", self.banned_words)
            self.banned_subwords = get_list(ASSETS_PATH, "banned_subwords.txt", self.banned_subwords)
            self.soft_banned_words = get_list(ASSETS_PATH, "soft_banned_words.txt", self.soft_banned_words)
            for word in self.banned_subwords:
                self.banned_subwords_automaton.add_word(word, len(self.banned_subwords_automaton))
            self.banned_subwords_automaton.make_automaton()
            _URL_LISTS[key] = (self.block_listed_domains, self.block_listed_url, self.banned_words,
                               self.banned_subwords, self.soft_banned_words, self.banned_subwords_automaton)
        (self.block_listed_domains, self.block_listed_url, self.banned_words, self.banned_subwords,
         self.soft_banned_words, self.banned_subwords_automaton) = _URL_LISTS[key]
        self._downloaded = True

    def filter(self, document):
        if not document.metadata.get("url"):
            self.stat_update("no_url")
            return True
        return super().filter(document)
