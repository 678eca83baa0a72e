"""spaCy's English words and sentences for the quality filters, at a fraction of spaCy's cost.

Why: datatrove's Gopher, C4 and FineWeb filters split text with ``SpaCyTokenizer`` (spaCy's
blank English pipeline plus its sentencizer), inside a ``memory_zone`` that throws spaCy's
own token cache away after every call. That was about 70 % of curation's CPU (docs/LOG.md).

spaCy's tokenizer is context-free per whitespace run: it cuts the text into maximal runs of
whitespace and non-whitespace characters (a single ``" "`` between two words becomes the
previous token's trailing space, not a token) and tokenizes each run on its own, through a
cache keyed by the run's text. This class does the same cut with one regex and keeps its own
bounded cache of run -> tokens, filled by calling spaCy's tokenizer on the run alone, so every
token is spaCy's; plain runs (ASCII letters or digits, maybe one final , ; : ! ?) are cut by the
one rule spaCy applies to them, without calling it (``_PLAIN``). Sentences are spaCy's
``Sentencizer`` rule replayed over those tokens (a sentence starts at the first token after one
of its punctuation characters that is neither punctuation itself nor one of those characters).
The results equal ``SpaCyTokenizer``'s, which tests/curation/test_words.py checks on the sample
crawl. The filters accept it as their ``language`` (datatrove's ``load_word_tokenizer`` takes a
tokenizer object), and it remembers the last text's words, so Gopher repetition and Gopher
quality split a document once.
"""
from __future__ import annotations

import contextlib
import re

from datatrove.utils.word_tokenizers import SpaCyTokenizer

_RUNS = re.compile(r"\s+|\S+")  # sre's \s is str.isspace, the test spaCy's tokenizer uses
# A run spaCy's English rules leave whole, or cut only before one final , ; : ! or ?: ASCII letters
# or digits alone. No prefix, infix or URL rule matches inside either (every one needs punctuation,
# a symbol or a letter next to a digit), and a suffix rule takes only the punctuation mark. The
# period is not here: "C." and "QoS." stay one token, "abc." does not. Special cases (its
# tokenizer exceptions: "cannot", "Jan.") go to spaCy (`_cache_if_plain`).
_PLAIN = re.compile(r"([A-Za-z]+|[0-9]+)([,;:!?]?)")


class CachedSpacyWords(SpaCyTokenizer):
    """``SpaCyTokenizer("en")`` with a per-process cache of whitespace runs -> spaCy tokens."""

    def __init__(self, language: str = "en", max_entries: int = 1 << 18):
        super().__init__(language)
        self.max_entries = max_entries
        self._runs: dict[str, tuple[str, ...]] = {}
        self._flags: dict[str, tuple[bool, bool]] = {}  # token -> (in punct_chars, is_punct)
        self._spacy = None  # (tokenizer, punct_chars, is_punct)
        self._last: tuple[str | None, list[str]] = (None, [])

    def __getstate__(self):
        state = dict(self.__dict__)
        state.update(_tokenizer=None, _spacy=None, _runs={}, _flags={}, _last=(None, []))
        return state

    @property
    def spacy(self):
        """spaCy's English tokenizer, built as ``spacy.blank("en")`` builds it, without ``Language``:
        its registry lookups import every package that declares a spaCy entry point (presidio,
        and with it transformers: 15 s in every worker here). Plus the sentencizer's rule inputs."""
        if self._spacy is None:
            _import_spacy_without_torch()
            from spacy.attrs import IS_PUNCT
            from spacy.lang.en import English
            from spacy.pipeline.sentencizer import Sentencizer
            from spacy.tokenizer import Tokenizer
            from spacy.util import compile_infix_regex, compile_prefix_regex, compile_suffix_regex
            from spacy.vocab import create_vocab

            d = English.Defaults
            vocab = create_vocab("en", d)
            tok = Tokenizer(vocab, rules=d.tokenizer_exceptions, prefix_search=compile_prefix_regex(d.prefixes).search,
                            suffix_search=compile_suffix_regex(d.suffixes).search,
                            infix_finditer=compile_infix_regex(d.infixes).finditer, token_match=d.token_match,
                            url_match=d.url_match)
            self._spacy = (tok, set(Sentencizer.default_punct_chars), vocab.lex_attr_getters[IS_PUNCT],
                           frozenset(tok.rules))
        return self._spacy

    @contextlib.contextmanager
    def _zone(self):
        """spaCy's ``Language.memory_zone`` for the tokenizer: strings of the call are freed after it."""
        from cymem.cymem import Pool

        tok, mem = self.spacy[0], Pool()
        with tok.vocab.memory_zone(mem):
            yield tok

    def _tokens(self, run: str) -> tuple[str, ...]:
        toks = self._runs.get(run)
        if toks is None:
            self._fill([run])
            toks = self._runs[run]
        return toks

    def _fill(self, runs: list[str]) -> None:
        """Tokenize the runs not yet cached in one spaCy call. Non-whitespace runs are joined by
        newlines: each newline is a token of its own, so no special case (spaCy merges adjacent
        tokens that spell one) can span two runs, and each run tokenizes as it would alone."""
        new = [r for r in dict.fromkeys(runs) if r not in self._runs]
        if not new:
            return
        if len(self._runs) + len(new) > self.max_entries:  # full: start again with this text's runs
            self._runs.clear()
            new = list(dict.fromkeys(runs))
        words = [r for r in new if not r[0].isspace() and not self._cache_if_plain(r)]
        with self._zone() as tok:
            for r in new:
                if r[0].isspace():
                    self._runs[r] = tuple(t.text for t in tok(r))
            if words:
                doc, ends, i = tok("\n".join(words)), [], 0
                for w in words:
                    i += len(w)
                    ends.append(i)
                    i += 1
                k, cur = 0, []
                for t in doc:
                    if t.idx >= ends[k]:  # the separator
                        self._runs[words[k]], k, cur = tuple(cur), k + 1, []
                    else:
                        cur.append(t.text)
                self._runs[words[k]] = tuple(cur)

    def _cache_if_plain(self, run: str) -> bool:
        """Cache `run`'s tokens without spaCy when it is a plain run (`_PLAIN`): a third of the
        distinct runs of a crawl, each ~20 us in spaCy's tokenizer (docs/LOG.md, issue 24)."""
        m = _PLAIN.fullmatch(run)
        specials = self.spacy[3]
        if m is None or run in specials or m[1] in specials:
            return False
        self._runs[run] = (m[1], m[2]) if m[2] else (m[1],)
        return True

    def _pieces(self, text: str):
        """(start offset, run) for every run spaCy tokenizes, in order."""
        prev_word = False
        for m in _RUNS.finditer(text):
            run, start = m.group(), m.start()
            if run[0].isspace():
                if prev_word and run[0] == " ":  # the single space after a word is its trailing space
                    run, start = run[1:], start + 1
                prev_word = False
                if not run:
                    continue
            else:
                prev_word = True
            yield start, run

    def word_tokenize(self, text: str) -> list[str]:
        if text is self._last[0] or text == self._last[0]:
            return list(self._last[1])
        try:
            runs = text.split()  # str.split() cuts at str.isspace, as spaCy does
            self._fill(runs)
            cache = self._runs
            words = [t for r in runs for t in cache[r]]
        except Exception:
            if "IS_ALPHA" not in text:
                raise
            words = SpaCyTokenizer(self.language).word_tokenize(text)  # datatrove's own workaround
        self._last = (text, words)
        return list(words)

    def _flag(self, tok: str) -> tuple[bool, bool]:
        f = self._flags.get(tok)
        if f is None:
            _, punct_chars, is_punct, _ = self.spacy
            if len(self._flags) >= self.max_entries:
                self._flags.clear()
            f = self._flags[tok] = (tok in punct_chars, bool(is_punct(tok)))
        return f

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        """spaCy's sentence spans: (start_char, end_char) of each sentence the sentencizer finds."""
        spans: list[tuple[int, int]] = []
        start = end = None
        seen_period = False
        for offset, run in self._pieces(text):
            for tok in self._tokens(run):
                in_chars, is_punct = self._flag(tok)
                if start is None:
                    start = offset
                if seen_period and not is_punct and not in_chars:
                    spans.append((start, end))
                    start, seen_period = offset, False
                elif in_chars:
                    seen_period = True
                offset += len(tok)
                end = offset
        if start is not None:
            spans.append((start, end))
        return spans

    def sent_tokenize(self, text: str) -> list[str]:
        return [s for s in (text[a:b].strip() for a, b in self.span_tokenize(text)) if s]


def _import_spacy_without_torch() -> None:
    """Import spaCy without letting thinc import torch (2 CPU-seconds and ~200 MB in every curate
    worker, for a tokenizer that never runs a model): thinc only records that torch is missing.
    If torch is already imported nothing changes; torch stays importable afterwards."""
    import sys

    if "spacy" in sys.modules or "torch" in sys.modules:
        return
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` raise ImportError
    try:
        import spacy  # noqa: F401
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]


_WORDS: dict[str, CachedSpacyWords] = {}


def english_words() -> CachedSpacyWords:
    """This process's splitter (one cache per process, shared by every filter)."""
    if "en" not in _WORDS:
        _WORDS["en"] = CachedSpacyWords("en")
    return _WORDS["en"]
