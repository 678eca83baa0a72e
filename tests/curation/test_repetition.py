"""The fast Gopher repetition filter decides as datatrove's, with the same reasons and n-gram figures."""
from __future__ import annotations

import random

import pytest
from datatrove.data import Document
from datatrove.pipeline.filters import GopherRepetitionFilter
from datatrove.pipeline.filters.gopher_repetition_filter import find_all_duplicate, find_top_duplicate, get_n_grams

from lmforge.curation.filters.repetition import FastGopherRepetition, duplicated_ngram_chars, ngrams, top_ngram_chars
from lmforge.curation.words import CachedSpacyWords


def _synthetic() -> list[str]:
    """Texts that trip each rule, ties between top n-grams of different lengths, words whose
    separator-less joins collide ("ab c" / "a bc"), and repeats at positions the walk skips."""
    rng = random.Random(0)
    vocab = ["a", "ab", "b", "bc", "c", "the", "quick", "brown", "fox", "x" * 12, "dog.", "Yes!"]
    out = ["x", "one two", "ab c a bc ab c a bc ab c", "the fox the dog the fox the dog", "a\n\na\n\na\n\nb",
           "line\nline\nline\nother", "dup dup dup dup dup dup dup dup dup dup dup dup"]
    for _ in range(300):
        words = [rng.choice(vocab) for _ in range(rng.randint(1, 60))]
        if rng.random() < 0.5:   # a repeated stretch
            i = rng.randrange(len(words))
            words[i:i] = words[max(0, i - rng.randint(2, 12)):i] * rng.randint(1, 3)
        seps = rng.choice([" ", " ", "\n", "\n\n"])
        out.append(seps.join(words))
    return out


@pytest.fixture(scope="module")
def texts():
    from lmforge.testing.curate import sample_texts

    return sample_texts(pages=60, docs=40) + _synthetic()


def test_ngram_figures_equal_datatrove(texts):
    words = CachedSpacyWords()
    for t in texts:
        w = words.word_tokenize(t)
        for n in range(2, 11):
            grams = get_n_grams(w, n)
            assert ngrams(w, n, " ") == grams and ngrams(w, n, "") == ["".join(g) for g in zip(*(w[i:] for i in range(n)))]
            assert top_ngram_chars(ngrams(w, n, " ")) == (find_top_duplicate(grams) if grams else 0), (n, t[:120])
            assert duplicated_ngram_chars(ngrams(w, n, ""), n) == find_all_duplicate(w, n), (n, t[:120])


@pytest.mark.parametrize("kwargs", [{}, {"dup_line_frac": None, "dup_para_frac": None,
                                         "top_n_grams": ((2, 0.05), (3, 0.05)), "dup_n_grams": ((5, 0.01),)}])
def test_decisions_and_reasons_equal_datatrove(texts, kwargs):
    ref, fast = GopherRepetitionFilter(**kwargs), FastGopherRepetition(**kwargs)
    words = CachedSpacyWords()
    ref.language = fast.language = words
    verdicts = []
    for i, t in enumerate(texts + [""]):
        doc = Document(text=t, id=str(i))
        verdicts.append(ref.filter(doc))
        assert fast.filter(doc) == verdicts[-1], t[:200]
    reasons = {v[1] for v in verdicts if v is not True}
    assert len(reasons) >= 4 and True in verdicts   # the texts exercise several rules, and some pass


def test_a_limit_only_settles_what_the_threshold_decides(texts):
    words = CachedSpacyWords()
    for t in texts[:80]:
        w = words.word_tokenize(t)
        for n in (5, 8):
            exact = find_all_duplicate(w, n)
            for limit in (0, exact - 1, exact, 10 * exact + 10):
                got = duplicated_ngram_chars(ngrams(w, n, ""), n, limit)
                assert (got > limit) == (exact > limit) and (got == exact or got <= limit), (n, limit, t[:80])
