"""The cached word splitter gives spaCy's words and sentences on the filters' inputs."""
from __future__ import annotations

import pickle

import pytest
from datatrove.utils.word_tokenizers import SpaCyTokenizer

from lmforge.curation.words import CachedSpacyWords

# whitespace layouts, spaCy special cases (emoticons, abbreviations, "(==)"), URLs, punctuation runs
EDGES = ["a.  b", " x", "a \n b", "x.  y. z", "Hello!!! World?! ok...", "e.g. foo bar. Baz", "  lead", "trail  ",
         "\xa0a\u2003b", "(a). b", "see http://x.org/a. Next one", "", " ", "..", "a.\t\tb c", "x (==) y :) z",
         "U.S. and Dr. Who. 3.14 is pi! \u201cQuoted.\u201d Next", "a\n\n\nb.\n", "don't can't won't. Fin"]


@pytest.fixture(scope="module")
def texts():
    from lmforge.testing.curate import sample_texts

    return sample_texts(pages=40, docs=20) + EDGES


def test_words_equal_spacy(texts):
    ref, new = SpaCyTokenizer("en"), CachedSpacyWords()
    for t in texts:
        assert new.word_tokenize(t) == ref.word_tokenize(t), t[:200]
    for t in texts:  # again, from the cache
        assert new.word_tokenize(t) == ref.word_tokenize(t), t[:200]


def test_sentences_equal_spacy(texts):
    """C4 counts sentences per line: spans (and so counts) equal the sentencizer's."""
    ref, new = SpaCyTokenizer("en"), CachedSpacyWords()
    lines = [line.strip() for t in texts for line in t.splitlines() if line.strip()][:800]
    for line in lines + EDGES + texts[:5]:
        assert new.span_tokenize(line) == ref.span_tokenize(line), line[:200]
        assert new.sent_tokenize(line) == ref.sent_tokenize(line), line[:200]


def test_cache_bounded_and_pickles_empty():
    new = CachedSpacyWords(max_entries=10)
    text = " ".join(f"w{i}." for i in range(50))
    assert new.word_tokenize(text) == SpaCyTokenizer("en").word_tokenize(text)
    assert len(new._runs) <= 50 and len(new.word_tokenize("a b c")) == 3
    new.word_tokenize(" ".join(f"v{i}" for i in range(30)))
    assert len(new._runs) <= 30
    mixed = "v1 v2 fresh1 fresh2 fresh3 " * 3  # cached and new runs in a text that overflows the cache
    assert new.word_tokenize(mixed) == SpaCyTokenizer("en").word_tokenize(mixed)
    copy = pickle.loads(pickle.dumps(new))
    assert copy._runs == {} and copy._tokenizer is None
    assert copy.word_tokenize(text) == new.word_tokenize(text)


def test_plain_runs_are_spacys_tokens(texts):
    """Runs of ASCII letters or digits, with or without one final , ; : ! ?, are cut without spaCy
    (words._PLAIN). Each one's words equal spaCy's, next to the runs that look plain but are not:
    tokenizer exceptions ("cannot", "gonna", "Jan"), a final period (spaCy keeps "C." and "QoS."
    whole but cuts "abc."), units after digits ("10km"), and letters beyond ASCII."""
    import random
    import string

    ref, new = SpaCyTokenizer("en"), CachedSpacyWords()
    tricky = ["cannot", "Cannot,", "gonna!", "Jan", "Jan:", "im", "Im?", "dont;", "C.", "QoS.", "KiB.", "abc.",
              "ABC.", "10km", "10km,", "3pm", "2nd", "1st!", "US", "U.S.", "e.g.", "ok", "OK!", "a", "I", "x:",
              "naïve", "Köln,", "co-op", "can't", "12", "007:", "2024?", "a1", "1a", "foo!!", "bar?!", "(x)"]
    rng = random.Random(0)
    made = ["".join(rng.choice(pool) for _ in range(rng.randint(1, 9))) + rng.choice(["", ",", ";", ":", "!", "?"])
            for pool in (string.ascii_letters, string.digits, string.ascii_lowercase) for _ in range(300)]
    crawl = [r for t in texts for r in t.split()]
    plain = [r for r in tricky + made + crawl if new._cache_if_plain(r)]
    assert len(plain) > 1000 and not {"cannot", "Cannot,", "gonna!", "C.", "abc.", "10km"} & set(plain)
    for run in tricky + made + crawl:
        assert new.word_tokenize(run) == ref.word_tokenize(run), run
