"""Gopher's repetition rules with datatrove's decisions, and the n-gram counting done in C.

datatrove's `GopherRepetitionFilter` builds every n-gram string with a Python slice and join
and counts them in a Python loop, for n = 2..10 on every document: after word splitting it
was the largest cost left in curation (docs/LOG.md, issue 24). `FastGopherRepetition`
applies the same rules in the same order with the same thresholds and reasons; only how the
n-grams are built and counted changes:

- n-grams: each list built from the one for n - 1 by C-level concatenation (`NGrams`);
- top n-gram (n = 2, 3, 4): counted by `Counter(list)` (C).
  `most_common(1)` then picks the n-gram datatrove's loop picks: the first, in order of
  first appearance, of the most frequent ones (their lengths can differ, so that matters);
- duplicated n-grams (n = 5..10): datatrove walks the n-grams (joined without a separator),
  adding the characters of an n-gram seen before and jumping n words past it. Here a dict
  built in C finds each n-gram's first position; no repeat, or repeats too short to pass
  the threshold, settle it without a walk, and the walk steps only through the repeats.

tests/curation/test_repetition.py checks decisions and reasons against datatrove's filter.
"""
from __future__ import annotations

import bisect
from collections import Counter
from itertools import repeat
from operator import add

import numpy as np

from datatrove.pipeline.filters import GopherRepetitionFilter
from datatrove.pipeline.filters.gopher_repetition_filter import find_duplicates
from datatrove.utils.text import split_into_words


class NGrams:
    """The n-grams of `words` joined by `sep`, n-gram lists built from the (n - 1)-gram ones by
    C-level concatenation (`map(add, ...)`): the same strings as `sep.join(words[i:i + n])`."""

    def __init__(self, words: list[str], sep: str):
        self.words, self.sep = words, sep
        self.by_n: dict[int, list[str]] = {1: words}

    def __call__(self, n: int) -> list[str]:
        k = max(i for i in self.by_n if i <= n)
        grams = self.by_n[k]
        while k < n:
            k += 1
            tail = self.words[k - 1:]
            grams = list(map(add, map(add, grams, repeat(self.sep)), tail) if self.sep else map(add, grams, tail))
            self.by_n[k] = grams
        return grams


def ngrams(words: list[str], n: int, sep: str) -> list[str]:
    """`sep.join` of every run of `n` consecutive words (datatrove's `get_n_grams` for sep " ")."""
    return NGrams(words, sep)(n)


def top_ngram_chars(grams: list[str]) -> int:
    """datatrove's `find_top_duplicate(grams)`; 0 when there is no n-gram."""
    if not grams:
        return 0
    gram, count = Counter(grams).most_common(1)[0]
    return len(gram) * count


def duplicated_ngram_chars(keys: list[str], n: int, limit: float | None = None) -> int:
    """datatrove's `find_all_duplicate(words, n)` from `keys`, the n-grams joined without a
    separator; with a `limit`, any number <= `limit` once the result is known to be at most
    `limit` (the caller only compares it with a threshold).

    datatrove's walk, position by position: an n-gram seen at a visited position before
    counts its characters and the walk jumps n positions (skipping them), else it is
    remembered and the walk steps by one. Only positions whose n-gram occurred earlier can
    count, so the walk here visits just those ("repeats"), in order: a repeat counts when its
    n-gram's first position was visited (not inside a jump) or an earlier repeat of it was.
    """
    m = len(keys)
    first = dict(zip(reversed(keys), range(m - 1, -1, -1)))   # n-gram -> its first position
    if len(first) == m:
        return 0
    bound = sum(map(len, keys)) - sum(map(len, first))   # all repeats' characters: the walk counts a subset
    if limit is not None and bound <= limit:
        return bound
    firsts = np.fromiter(map(first.__getitem__, keys), dtype=np.int64, count=m)
    repeats = np.flatnonzero(firsts != np.arange(m)).tolist()
    firsts = firsts.tolist()
    jumps: list[int] = []   # positions that counted: the walk skipped the n - 1 after each
    seen: set[int] = set()  # first positions of n-grams whose repeat was visited
    repeated, i = 0, 0
    for j in repeats:
        if j < i:
            continue
        f = firsts[j]
        k = bisect.bisect_left(jumps, f) - 1
        if f in seen or k < 0 or f >= jumps[k] + n:
            repeated += len(keys[j])
            jumps.append(j)
            i = j + n
        else:
            i = j + 1
        seen.add(f)
    return repeated


class FastGopherRepetition(GopherRepetitionFilter):
    """datatrove's Gopher repetition filter (same arguments, decisions and reasons), faster."""

    def filter(self, doc):
        text = doc.text
        if not text:
            return False, "empty"
        for parts, count_frac, char_frac, what in (
                (self.paragraph_exp.split(text.strip()), self.dup_para_frac, self.dup_para_char_frac, "para"),
                (self._line_splitter.split(text), self.dup_line_frac, self.dup_line_char_frac, "line")):
            duplicates, chars = find_duplicates(parts)
            if count_frac and duplicates / len(parts) > count_frac:
                return False, f"dup_{what}_frac"
            if char_frac and chars / len(text) > char_frac:
                return False, f"dup_{what}_char_frac"
        words = split_into_words(text, self.language)
        spaced, joined = NGrams(words, " "), NGrams(words, "")
        for n, frac in self.top_n_grams:
            if top_ngram_chars(spaced(n)) / len(text) > frac:
                return False, f"top_{n}_gram"
        for n, frac in self.dup_n_grams:
            if duplicated_ngram_chars(joined(n), n, frac * len(text)) / len(text) > frac:
                return False, f"duplicated_{n}_n_grams"
        return True
