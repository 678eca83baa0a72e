"""spaCy's English words and sentences for the quality filters, at a fraction of spaCy's cost.

Why: datatrove's Gopher, C4 and FineWeb filters split text with ``SpaCyTokenizer`` (spaCy's
blank English pipeline plus its sentencizer), inside a ``memory_zone`` that throws spaCy's
own token cache away after every call. That was about 70 % of curation's CPU (docs/LOG.md).

spaCy's tokenizer is context-free per whitespace run: it cuts the text into maximal runs of
whitespace and non-whitespace characters (a single ``" "`` between two words becomes the
previous token's trailing space, not a token) and tokenizes each run on its own, through a
cache keyed by the run's text. This class does the same cut with one regex and keeps its own
bounded cache of run -> tokens, filled by calling spaCy's tokenizer on the run alone, so every
token is spaCy's. Sentences are spaCy's ``Sentencizer`` rule replayed over those tokens (a
sentence starts at the first token after one of its punctuation characters that is neither
punctuation itself nor one of those characters). The results equal ``SpaCyTokenizer``'s, which
tests/data/test_words.py checks on the sample crawl. The filters accept it as their
``language`` (datatrove's ``load_word_tokenizer`` takes a tokenizer object), and it remembers
the last text's words, so Gopher repetition and Gopher quality split a document once.
"""
from __future__ import annotations

import re

from datatrove.utils.word_tokenizers import SpaCyTokenizer

_RUNS = re.compile(r"\s+|\S+")  # sre's \s is str.isspace, the test spaCy's tokenizer uses


class CachedSpacyWords(SpaCyTokenizer):
    """``SpaCyTokenizer("en")`` with a per-process cache of whitespace runs -> spaCy tokens."""

    def __init__(self, language: str = "en", max_entries: int = 1 << 18):
        super().__init__(language)
        self.max_entries = max_entries
        self._runs: dict[str, tuple[str, ...]] = {}
        self._flags: dict[str, tuple[bool, bool]] = {}  # token -> (in punct_chars, is_punct)
        self._punct_chars = self._is_punct = None
        self._last: tuple[str | None, list[str]] = (None, [])

    def __getstate__(self):
        state = dict(self.__dict__)
        state.update(_tokenizer=None, _runs={}, _flags={}, _punct_chars=None, _is_punct=None, _last=(None, []))
        return state

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
        if len(self._runs) + len(new) > self.max_entries:
            self._runs.clear()
        words = [r for r in new if not r[0].isspace()]
        with self.tokenizer.memory_zone():
            for r in new:
                if r[0].isspace():
                    self._runs[r] = tuple(t.text for t in self.tokenizer.tokenizer(r))
            if words:
                doc, ends, i = self.tokenizer.tokenizer("\n".join(words)), [], 0
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
        except Exception:  # noqa: BLE001 - spaCy's own fallbacks (e.g. the "IS_ALPHA" string)
            words = super().word_tokenize(text)
        self._last = (text, words)
        return list(words)

    def _flag(self, tok: str) -> tuple[bool, bool]:
        f = self._flags.get(tok)
        if f is None:
            if self._punct_chars is None:
                from spacy.attrs import IS_PUNCT

                self._punct_chars = self.tokenizer.get_pipe("sentencizer").punct_chars
                self._is_punct = self.tokenizer.vocab.lex_attr_getters[IS_PUNCT]
            if len(self._flags) >= self.max_entries:
                self._flags.clear()
            f = self._flags[tok] = (tok in self._punct_chars, bool(self._is_punct(tok)))
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


_WORDS: dict[str, CachedSpacyWords] = {}


def english_words() -> CachedSpacyWords:
    """This process's splitter (one cache per process, shared by every filter)."""
    if "en" not in _WORDS:
        _WORDS["en"] = CachedSpacyWords("en")
    return _WORDS["en"]
