"""Custom datatrove blocks for offline curation (importable, so workers and Slurm jobs can unpickle them).

Why each exists:
- ``RecordingTrafilatura``: datatrove's extractor drops empty extractions and timeouts without
  an exclusion writer; here every dropped document is written with reason ``extract:<why>``.
- ``OfflineURLFilter``: datatrove's URLFilter, but tldextract uses its bundled suffix-list
  snapshot (the default fetches the list from the internet), documents without a URL
  (JSONL/Parquet sources) pass instead of failing an assert, and the big block lists are
  hashed lists on disk (``url_lists``) instead of 400 MB of sets in every worker.
- ``LanguageIDFilter``: datatrove's LanguageFilter downloads fastText models at run time;
  py3langid ships its model. Sets ``metadata["language"]`` (ISO 639-1) and the score.
- Gopher/C4/FineWeb subclasses: the stock filters; Gopher's stop-word rule uses the list of
  the document's language (skipped for languages without a list).
- ``CountingPII``: datatrove's PIIFormatter plus counts of what it replaced.
- ``WorkWriter``: Parquet with a fixed schema; as an exclusion writer it stamps
  ``reason = "<step>:<filter reason>"``.
"""
from __future__ import annotations

import importlib.metadata  # noqa: F401  (datatrove's spaCy loader needs it imported)
import re

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.extractors.base import ExtractorSandbox
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                        GopherRepetitionFilter, URLFilter)
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.formatters import PIIFormatter
from datatrove.pipeline.writers import ParquetWriter
from datatrove.utils.logging import logger

from lmforge.data import dependency_check  # noqa: F401  (datatrove's step checks, without a scan)
from lmforge.data.words import english_words

WORK_COLUMNS = (("id", "string"), ("url", "string"), ("source", "string"), ("language", "string"),
                ("language_score", "float64"), ("text", "string"), ("reason", "string"),
                ("duplicate_of", "string"))

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


_BLANKS = re.compile(r"\n{3,}")


def tidy(text: str) -> str:
    """Strip every line and collapse runs of blank lines.

    Trafilatura keeps the source's indentation, so DocBook pages come out with whitespace-only
    lines like "\\t\\t" between paragraphs; Gopher's duplicate-line rule counts those as
    duplicates and dropped a third of the handbook before this.
    """
    return _BLANKS.sub("\n\n", "\n".join(line.strip() for line in text.splitlines())).strip()


def work_schema():
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, t)()) for name, t in WORK_COLUMNS])


def doc_row(doc) -> dict:
    md = doc.metadata
    return {"id": doc.id, "url": md.get("url"), "source": md.get("source"), "language": md.get("language"),
            "language_score": md.get("language_score"), "text": doc.text,
            "reason": None, "duplicate_of": None}


class WorkWriter(ParquetWriter):
    """Parquet writer with the fixed work schema; ``step`` set => rows are rejections."""

    name = "work-parquet"

    def __init__(self, output_folder, step: str | None = None):
        super().__init__(output_folder, output_filename="${rank}.parquet", schema=work_schema(),
                         compression="zstd", max_file_size=-1, use_content_defined_chunking=False)
        self.step = step

    def _default_adapter(self, document) -> dict:
        row = doc_row(document)
        if self.step:
            why = document.metadata.get("filter_reason")
            row["reason"] = f"{self.step}:{why}" if why else self.step
        return row


class RecordingTrafilatura(Trafilatura):
    """Trafilatura extraction that hands every dropped document to ``exclusion_writer``."""

    name = "extract"

    def __init__(self, exclusion_writer: WorkWriter | None = None, **kwargs):
        super().__init__(**kwargs)
        self.exclusion_writer = exclusion_writer

    def _drop(self, writer, doc, why: str, rank: int):
        self.stat_update("dropped", f"dropped_{why}")
        if writer is not None:
            doc.metadata["filter_reason"] = why
            writer.write(doc, rank)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        import contextlib

        writer_cm = self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext()
        with ExtractorSandbox(timeout=self.timeout, warmup_text="") as extractor, writer_cm as writer:
            for doc in data:
                self.stat_update("total")
                html = doc.text
                with self.track_time():
                    try:
                        text = extractor.process_document(html, self.extract)
                    except TimeoutError:
                        text, why = None, "timeout"
                    except EOFError:
                        text, why = None, "broken_process"
                    except Exception as e:  # noqa: BLE001 - a bad page must not stop the shard
                        logger.warning(f"extract: {doc.metadata.get('url')}: {type(e).__name__}: {e}")
                        text, why = None, "error"
                    else:
                        why = "empty"
                text = tidy(text) if text else text
                if text:
                    doc.text = text
                    self.stat_update("forwarded")
                    yield doc
                else:
                    self._drop(writer, doc, why, rank)


_URL_LISTS: dict = {}  # per-process cache of URLFilter block lists


class OfflineURLFilter(URLFilter):
    """URLFilter with the bundled public-suffix snapshot; URL-less documents pass."""

    name = "url_filter"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        from tldextract import TLDExtract

        self.tldextractor = TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

    def download_data(self):
        """Load the shipped block lists once per worker process, not once per task; the two big
        ones (4.6 million domains, 20 thousand URLs) as hashed lists on disk (``url_lists``)."""
        if self._downloaded or not self.use_integrated_lists:
            return
        key = (frozenset(self.block_listed_domains), frozenset(self.block_listed_url),
               frozenset(self.banned_words), frozenset(self.banned_subwords), frozenset(self.soft_banned_words))
        if key not in _URL_LISTS:
            from datatrove.pipeline.filters.url_filter import ASSETS_PATH, get_list

            from lmforge.data.url_lists import HashedList, extracted_folder

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


class LanguageIDFilter(BaseFilter):
    """Offline language identification with py3langid (normalised probabilities)."""

    name = "language"

    def __init__(self, allowed: list[str] | None, min_score: float, max_chars: int = 20000,
                 exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.allowed = set(allowed) if allowed is not None else None  # None: label only
        self.min_score = min_score
        self.max_chars = max_chars
        self._ident = None

    def classify(self, text: str) -> tuple[str, float]:
        if self._ident is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            self._ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        lang, score = self._ident.classify(text[: self.max_chars])
        # float32 BLAS sums differ in the 5th decimal between processes: round for reproducible outputs
        return lang, round(float(score), 4)

    def filter(self, doc):
        lang, score = self.classify(doc.text)
        doc.metadata["language"], doc.metadata["language_score"] = lang, score
        self.stat_update(f"lang_{lang}")
        if self.allowed is None:
            return True
        if lang not in self.allowed:
            return False, f"not_allowed_{lang}"
        if score < self.min_score:
            return False, "low_score"
        return True


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


class LangGopherRepetition(_PerLanguage, GopherRepetitionFilter):
    name = "gopher_repetition"


class LangGopherQuality(_PerLanguage, GopherQualityFilter):
    """Gopher quality rules; the stop-word rule uses the document language's list (skipped if none)."""

    name = "gopher_quality"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._min_stop_words = self.min_stop_words

    def filter(self, doc):
        lang = self._use_language(doc)
        words = STOP_WORDS.get(lang)
        self.stop_words = set(words or ())
        self.min_stop_words = self._min_stop_words if words else None
        return GopherQualityFilter.filter(self, doc)


class LangC4Quality(_PerLanguage, C4QualityFilter):
    name = "c4_quality"


class LangFineWebQuality(_PerLanguage, FineWebQualityFilter):
    name = "fineweb_quality"


class CountingPII(PIIFormatter):
    """PII redaction (emails, IP addresses) that also counts replacements."""

    name = "pii"

    def _count(self, replacer, text: str) -> int:
        return sum(1 for m in replacer.regex.finditer(text)
                   if replacer.validator is None or replacer.validator(m.group(0)))

    def format(self, text: str) -> str:
        if self.remove_emails:
            n = self._count(self.emails_replacer, text)
            if n:
                self.stat_update("emails_redacted", value=n)
                text = self.emails_replacer.replace(text)
        if self.remove_ips:
            n = self._count(self.ip_replacer, text)
            if n:
                self.stat_update("ips_redacted", value=n)
                text = self.ip_replacer.replace(text)
        return text
