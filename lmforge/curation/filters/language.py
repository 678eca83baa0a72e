"""Language identification offline: datatrove's LanguageFilter downloads fastText models at
run time; py3langid ships its model. Sets ``metadata["language"]`` (ISO 639-1) and its score,
which the quality filters read for their per-language rules.
"""
from __future__ import annotations

import functools

from datatrove.pipeline.filters.base_filter import BaseFilter

from lmforge.curation import dependency_check  # noqa: F401  (datatrove's step checks, without a scan)


@functools.cache
def _identifier():
    """py3langid's model, loaded once per process: decompressing it takes ~0.75 s, and datatrove
    unpickles a fresh filter for every task a worker runs (docs/LOG.md, issue 24)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


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
            self._ident = _identifier()
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
