"""The stock Gopher, C4 and FineWeb quality rules, per document language.

Gopher's stop-word rule uses the list of the document's language (skipped for languages
without one); every rule splits words with ``curation.words``' cached spaCy splitter.
"""
from __future__ import annotations

import importlib.metadata  # noqa: F401  (datatrove's spaCy loader needs it imported)

from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter

from lmforge.curation import dependency_check  # noqa: F401  (datatrove's step checks, without a scan)
from lmforge.curation.filters.gopher_quality import FastGopherQuality
from lmforge.curation.filters.repetition import FastGopherRepetition
from lmforge.curation.words import english_words

# Gopher's stop-word rule needs a list per language; English is Gopher's own list.
STOP_WORDS = {
    "en": ["the", "be", "to", "of", "and", "that", "have", "with"],
    "de": ["der", "die", "das", "und", "ist", "nicht", "mit", "zu", "von", "den", "ein", "eine"],
    "fr": ["le", "la", "les", "de", "des", "et", "est", "un", "une", "pour", "dans", "que"],
    "es": ["el", "la", "los", "las", "de", "y", "que", "en", "un", "una", "es", "para"],
    "it": ["il", "la", "di", "e", "che", "un", "una", "per", "non", "sono", "del", "della"],
    "nl": ["de", "het", "een", "en", "van", "is", "dat", "niet", "met", "voor", "op", "te"],
    "pt": ["o", "a", "os", "as", "de", "e", "que", "um", "uma", "para", "com", "não"],
}


class _PerLanguage:
    """Mixin: records the document's language on the filter before the stock rules run.

    Words and sentences are split with the English (spaCy blank) tokenizer for every language:
    loading a blank spaCy pipeline per language costs 0.3-7 s in every worker, and whitespace
    and punctuation splitting is what these rules need. Language-specific is only Gopher's
    stop-word list (``STOP_WORDS``). The splitter is ``words.CachedSpacyWords``: spaCy's words
    and sentences, cached per whitespace run and shared by every filter of the process.
    """

    def _use_language(self, doc) -> str:
        self.language = english_words()
        return doc.metadata.get("language") or "en"

    def filter(self, doc):
        self._use_language(doc)
        return super().filter(doc)


class LangGopherRepetition(_PerLanguage, FastGopherRepetition):
    """Gopher repetition rules: datatrove's decisions, n-grams counted in C (repetition.py)."""

    name = "gopher_repetition"


class LangGopherQuality(_PerLanguage, FastGopherQuality):
    """Gopher quality rules (datatrove's, each word's character tests cached: gopher_quality.py);
    the stop-word rule uses the document language's list (skipped if none)."""

    name = "gopher_quality"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._min_stop_words = self.min_stop_words

    def filter(self, doc):
        lang = self._use_language(doc)
        words = STOP_WORDS.get(lang)
        self.stop_words = set(words or ())
        self.min_stop_words = self._min_stop_words if words else None
        return FastGopherQuality.filter(self, doc)


class LangC4Quality(_PerLanguage, C4QualityFilter):
    name = "c4_quality"


class LangFineWebQuality(_PerLanguage, FineWebQualityFilter):
    name = "fineweb_quality"
