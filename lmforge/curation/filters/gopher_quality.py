"""datatrove's Gopher quality rules with each distinct word's character tests done once.

Why: ``GopherQualityFilter.filter`` asks two questions of every word of every document, each a
Python generator over the word's characters: does it hold a character outside
``PUNCTUATION_SET`` (a "non-symbol" word), and does it hold a letter. A crawl repeats its words
endlessly, so here the two answers are kept per distinct word (a bounded per-process table) and
the rules, their order, thresholds, arithmetic (``np.mean`` of the same lengths) and reasons are
datatrove's. tests/curation/test_gopher_quality.py checks decisions and reasons against the
stock filter; what it gained is in docs/LOG.md (issue 24).
"""
from __future__ import annotations

import numpy as np
from datatrove.pipeline.filters.gopher_quality_filter import GopherQualityFilter
from datatrove.utils.text import PUNCTUATION_SET, split_into_words

_FLAGS: dict[str, tuple[bool, bool]] = {}   # word -> (has a non-punctuation character, has a letter)
_MAX_WORDS = 1 << 18


def word_flags(word: str) -> tuple[bool, bool]:
    f = _FLAGS.get(word)
    if f is None:
        if len(_FLAGS) >= _MAX_WORDS:
            _FLAGS.clear()
        f = _FLAGS[word] = (any(ch not in PUNCTUATION_SET for ch in word), any(c.isalpha() for c in word))
    return f


class FastGopherQuality(GopherQualityFilter):
    """``GopherQualityFilter`` with per-word answers cached; same decisions and reasons."""

    def filter(self, doc):
        text = doc.text
        words = split_into_words(text, self.language)
        n_words = len(words)
        get = _FLAGS.get   # the cached words without a call; flags are never empty tuples
        flags = [get(w) or word_flags(w) for w in words]
        verdict = self._counts([len(w) for w, (non_symbol, _) in zip(words, flags) if non_symbol])
        if verdict is not None:
            return verdict
        verdict = self._symbols(text, n_words)
        if verdict is not None:
            return verdict
        alpha_ratio = self.max_non_alpha_words_ratio
        if alpha_ratio and sum(alpha for _, alpha in flags) / n_words < alpha_ratio:
            return False, "gopher_below_alpha_threshold"
        if self.min_stop_words and len(self.stop_words.intersection(set(words))) < self.min_stop_words:
            return False, "gopher_enough_stop_words"
        return True

    def _counts(self, lengths: list[int]):
        """Document length and mean word length, over the non-symbol words' `lengths`."""
        n_non_symbol = len(lengths)
        if self.min_doc_words and n_non_symbol < self.min_doc_words:
            return False, "gopher_short_doc"
        if self.max_doc_words and n_non_symbol > self.max_doc_words:
            return False, "gopher_long_doc"
        avg_n_words = np.mean(lengths)
        if self.min_avg_word_length and avg_n_words < self.min_avg_word_length:
            return False, "gopher_below_avg_threshold"
        if self.max_avg_word_length and avg_n_words > self.max_avg_word_length:
            return False, "gopher_above_avg_threshold"
        return None

    def _symbols(self, text: str, n_words: int):
        """Hashes and ellipses per word, bullet and ellipsis lines."""
        if self.max_symbol_word_ratio and text.count("#") / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_hashes"
        ellipses = text.count("...") + text.count("…")
        if self.max_symbol_word_ratio and ellipses / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_ellipsis"
        lines = text.splitlines()
        if (self.max_bullet_lines_ratio
                and sum(s.lstrip().startswith("•") or s.lstrip().startswith("-") for s in lines) / len(lines)
                > self.max_bullet_lines_ratio):
            return False, "gopher_too_many_bullets"
        if (self.max_ellipsis_lines_ratio
                and sum(s.rstrip().endswith("...") or s.rstrip().endswith("…") for s in lines) / len(lines)
                > self.max_ellipsis_lines_ratio):
            return False, "gopher_too_many_end_ellipsis"
        return None
