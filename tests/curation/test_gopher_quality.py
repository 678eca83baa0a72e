"""The Gopher quality filter with cached per-word tests decides as datatrove's, with its reasons."""
from __future__ import annotations

import random
import warnings

import pytest
from datatrove.data import Document
from datatrove.pipeline.filters import GopherQualityFilter

from lmforge.curation.filters.gopher_quality import FastGopherQuality
from lmforge.curation.words import CachedSpacyWords

# a threshold set that trips every rule somewhere in the texts below, and datatrove's defaults
STRICT = dict(min_doc_words=30, max_doc_words=400, min_avg_word_length=4, max_avg_word_length=6,
              max_symbol_word_ratio=0.02, max_bullet_lines_ratio=0.3, max_ellipsis_lines_ratio=0.1,
              max_non_alpha_words_ratio=0.9, min_stop_words=3)


def _synthetic() -> list[str]:
    """Bullets, ellipses, hashes, symbol-only and number-heavy words, Unicode letters."""
    rng = random.Random(1)
    vocab = ["the", "and", "of", "word", "längere", "東京", "#", "##", "...", "…", "--", "!!", "42", "3.14", "a-b",
             "x" * 14, "to", "with", "-", "•", "(", ")", "naïve", "don't", "e.g."]
    out = ["...", "# # #", "- a\n- b\n- c", "• one\n• two\nthree", "a...\nb…\nc", "", "the of and to with " * 20]
    for _ in range(400):
        lines = []
        for _ in range(rng.randint(1, 12)):
            line = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 25)))
            lines.append(rng.choice(["", "", "- ", "• "]) + line + rng.choice(["", "", "...", " …"]))
        out.append("\n".join(lines))
    return out


@pytest.fixture(scope="module")
def texts():
    from lmforge.testing.curate import sample_texts

    return sample_texts(pages=60, docs=40) + _synthetic()


def _verdict(f, i, text):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # np.mean of no words, on both sides
            return f.filter(Document(text=text, id=str(i)))
    except ZeroDivisionError:   # a text of no words under thresholds that do not stop it first
        return "ZeroDivisionError"


@pytest.mark.parametrize("kwargs", [{}, STRICT], ids=["defaults", "strict"])
def test_decisions_and_reasons_equal_datatrove(texts, kwargs):
    words = CachedSpacyWords()
    ours, stock = FastGopherQuality(**kwargs), GopherQualityFilter(**kwargs)
    ours.language = stock.language = words
    got = [_verdict(ours, i, t) for i, t in enumerate(texts)]
    want = [_verdict(stock, i, t) for i, t in enumerate(texts)]
    assert got == want
    reasons = {v[1] for v in want if isinstance(v, tuple)}
    if kwargs:   # the texts reach every rule
        assert len(reasons) >= 8, reasons
