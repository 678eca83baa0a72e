"""Decontamination: training text that shares a 13-gram with an evaluation item is dropped.

Why our own small index and not ``datatrove.pipeline.decont``: datatrove 0.9's n-gram
decontamination builds its index from lighteval task definitions fetched from the Hub, and
lmforge's items are local JSONL files (evals/data/); the check itself is a set lookup.

Text is normalised (lower case, every run of non-word characters a single space) and split
into words. An item contributes all its ``ngram``-word windows; an item shorter than that is
matched whole when it has at least ``min_words`` words (a short NAME line such as "copy files
and directories" would otherwise never match), shorter ones are too generic and skipped. A
document is contaminated when any window of its words is in the index; the first eval set it
matches is its reason (``decontamination:<set>``).

The same index guards post-training data: ``drop_contaminated_pairs`` removes SFT and
preference pairs any of whose fields carries an eval item, before any model trains on them
(stages instructions and preferences), and hands the dropped rows back with their reason.
One set of knobs (``data.decontamination`` in params.yaml) governs curation and pairs alike.
"""
from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np

from lmforge.config import require

_NON_WORD = re.compile(r"[\W_]+")


@dataclasses.dataclass
class DecontaminationConfig:
    """``data.decontamination``: drop training documents and pairs that share an n-gram with an eval item."""
    enabled: bool = True
    eval_data: str = "evals/data"   # the committed eval items, one <set>.jsonl per eval set
    ngram: int = 13                 # words per n-gram of normalised text
    min_words: int = 8              # shorter items are matched whole from this many words; fewer: skipped

    def __post_init__(self):
        require(0 < self.min_words <= self.ngram, f"data.decontamination.min_words must be in (0, ngram], "
                                                  f"got {self.min_words}")


def words(text: str) -> list[str]:
    return _NON_WORD.sub(" ", text.lower()).split()


def item_text(row: dict) -> str:
    """What an eval row contributes to the index (builders set ``decontam_text`` or ``text``)."""
    return row.get("decontam_text") or row.get("text") or ""


class NgramIndex:
    """The n-grams of the evaluation items, by eval set; ``match`` names the set a text hits."""

    def __init__(self, ngram: int = 13, min_words: int = 8):
        self.ngram, self.min_words = ngram, min_words
        self.grams: dict[tuple[str, ...], str] = {}
        self.lengths: set[int] = set()
        self.items: Counter = Counter()
        self.skipped: Counter = Counter()

    def add(self, eval_set: str, text: str) -> None:
        w = words(text)
        if len(w) < self.min_words:
            self.skipped[eval_set] += 1
            return
        self.items[eval_set] += 1
        n = min(self.ngram, len(w))
        self.lengths.add(n)
        for i in range(len(w) - n + 1):
            self.grams.setdefault(tuple(w[i:i + n]), eval_set)

    def match(self, text: str) -> str | None:
        if not self.grams:
            return None
        w = words(text)
        for n in sorted(self.lengths, reverse=True):
            for i in range(len(w) - n + 1):
                hit = self.grams.get(tuple(w[i:i + n]))
                if hit:
                    return hit
        return None


def read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def load_index(data_dir: str, ngram: int = 13, min_words: int = 8) -> NgramIndex:
    """The index over every ``<set>.jsonl`` in ``data_dir`` (evals/data)."""
    index = NgramIndex(ngram, min_words)
    files = sorted(Path(data_dir).glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"{data_dir}: no eval item files (*.jsonl) to decontaminate against")
    for f in files:
        for row in read_jsonl(f):
            index.add(f.stem, item_text(row))
    return index


def split_contaminated(rows: list[dict], index: NgramIndex, text) -> tuple[list[dict], list[tuple[dict, str]]]:
    """(clean rows, [(row, eval set)]) where ``text(row)`` is the training text of a row."""
    clean, dropped = [], []
    for row in rows:
        hit = index.match(text(row))
        if hit:
            dropped.append((row, hit))
        else:
            clean.append(row)
    return clean, dropped


def report(index: NgramIndex, dropped: list[tuple[dict, str]], checked: int) -> dict:
    """Metrics: documents checked and dropped, per eval set, and the index's size."""
    per_set = Counter(s for _, s in dropped)
    return {"checked": checked, "dropped": len(dropped), "ngram": index.ngram, "min_words": index.min_words,
            "by_eval_set": {s: {"items": index.items[s], "items_too_short": index.skipped[s],
                                "dropped": per_set.get(s, 0)}
                            for s in sorted(set(index.items) | set(index.skipped))}}


def drop_contaminated_pairs(df, params: DecontaminationConfig, columns: list[str]):
    """(kept rows, dropped rows with a ``reason`` column, metrics) of the DataFrame ``df``.

    A row is dropped when any of ``columns`` (prompt, response; or prompt, chosen, rejected)
    shares an n-gram with an eval item; each field is matched alone, so a window that only
    spans the seam between two fields never counts. ``params.enabled`` false keeps every row."""
    if not params.enabled:
        return df.reset_index(drop=True), df.iloc[:0].assign(reason=[]), {"enabled": False}
    index = load_index(params.eval_data, params.ngram, params.min_words)
    hits = [next((h for c in columns if (h := index.match(str(row[c])))), None)
            for row in df[columns].to_dict("records")]
    dropped = [(row, h) for row, h in zip(df.to_dict("records"), hits) if h]
    keep = np.array([h is None for h in hits], dtype=bool)   # a row mask even when df is empty
    out = df.loc[keep].reset_index(drop=True)
    gone = df.loc[~keep].reset_index(drop=True).assign(reason=[f"decontamination:{h}" for h in hits if h])
    return out, gone, {"enabled": True, **report(index, dropped, len(df))}
