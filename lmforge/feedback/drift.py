"""Drift check: are users asking what the model was trained on, and do they like it?

Three signals, each cheap and explainable, compare live traffic (the gateway's
request log) with the training prompts (the instruction pairs):

* the share of thumbs-down among rated answers;
* the prompt length distribution, as a population stability index (PSI) over
  the training prompts' length deciles (PSI > 0.25 is the usual "shifted" mark);
* the language distribution (py3langid, which ships its model; prompts of at
  least three words), as the total variation distance between the two.

Retraining is due when enough traffic was seen (``min_requests``) and a signal
crosses its threshold, or when harvest produced ``min_new_examples`` new rows.
The result, with the reasons, goes to ``metrics/drift.json`` (``retrain_due``);
the length histogram to ``metrics/drift_lengths.csv`` for ``dvc plots``.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from lmforge.config import require


@dataclass
class DriftConfig:
    """params.yaml ``harvest.drift`` section."""

    min_requests: int = 20  # below this, only min_new_examples can flag retraining
    max_thumbs_down_share: float = 0.35
    max_length_psi: float = 0.25
    max_language_tvd: float = 0.25
    min_new_examples: int = 100

    def __post_init__(self) -> None:
        require(self.min_requests >= 1, "harvest.drift.min_requests: must be >= 1")
        require(0 <= self.max_thumbs_down_share <= 1, "harvest.drift.max_thumbs_down_share: in [0, 1]")
        require(self.max_length_psi > 0, "harvest.drift.max_length_psi: must be > 0")
        require(0 < self.max_language_tvd <= 1, "harvest.drift.max_language_tvd: in (0, 1]")
        require(self.min_new_examples >= 1, "harvest.drift.min_new_examples: must be >= 1")


def prompt_length(text: str) -> int:
    return len(text.split())


def length_psi(reference: list[int], live: list[int], bins: int = 10) -> tuple[float, list[dict]]:
    """PSI of ``live`` against ``reference`` over the reference's quantile bins."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(live, dtype=float)
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    idx_ref = np.searchsorted(edges, ref, side="right")
    idx_cur = np.searchsorted(edges, cur, side="right")
    k = len(edges) + 1
    p = np.bincount(idx_ref, minlength=k) / max(len(ref), 1)
    q = np.bincount(idx_cur, minlength=k) / max(len(cur), 1)
    eps = 1e-4
    pe, qe = np.clip(p, eps, None), np.clip(q, eps, None)
    psi = float(np.sum((qe - pe) * np.log(qe / pe)))
    top = float(max(ref.max(initial=0), cur.max(initial=0)))
    lows = [0.0, *edges.tolist()]
    highs = [*edges.tolist(), top]
    rows = [{"bin": i, "min_words": lo, "max_words": hi, "train_share": round(float(p[i]), 6),
             "live_share": round(float(q[i]), 6)} for i, (lo, hi) in enumerate(zip(lows, highs))]
    return psi, rows


LANGID_MIN_WORDS = 3  # language ID on one or two words is mostly noise


def languages(texts: Iterable[str]) -> dict[str, float]:
    import py3langid

    counts = collections.Counter(py3langid.classify(t)[0] for t in texts
                                 if prompt_length(t) >= LANGID_MIN_WORDS)
    total = sum(counts.values())
    return {k: round(v / total, 6) for k, v in counts.most_common()} if total else {}


def tvd(p: dict[str, float], q: dict[str, float]) -> float:
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def drift_report(cfg: DriftConfig, train_prompts: list[str], live_prompts: list[str],
                 ups: int, downs: int, new_examples: int) -> tuple[dict, list[dict]]:
    """The drift metrics, ``retrain_due`` with its reasons, and the length histogram rows."""
    reasons = []
    rated = ups + downs
    down_share = downs / rated if rated else None
    enough = len(live_prompts) >= cfg.min_requests
    psi, hist = length_psi([prompt_length(t) for t in train_prompts] or [0],
                           [prompt_length(t) for t in live_prompts])
    lang_train, lang_live = languages(train_prompts), languages(live_prompts)
    lang_tvd = tvd(lang_train, lang_live) if lang_live else None
    if not live_prompts:
        psi = None
    if enough:
        if down_share is not None and down_share > cfg.max_thumbs_down_share:
            reasons.append(f"thumbs-down share {down_share:.2f} > {cfg.max_thumbs_down_share}")
        if psi is not None and psi > cfg.max_length_psi:
            reasons.append(f"prompt length PSI {psi:.3f} > {cfg.max_length_psi}")
        if lang_tvd is not None and lang_tvd > cfg.max_language_tvd:
            reasons.append(f"language TVD {lang_tvd:.3f} > {cfg.max_language_tvd}")
    if new_examples >= cfg.min_new_examples:
        reasons.append(f"{new_examples} new examples >= {cfg.min_new_examples}")
    train_len = [prompt_length(t) for t in train_prompts]
    live_len = [prompt_length(t) for t in live_prompts]
    report = {
        "live_requests": len(live_prompts), "enough_traffic": enough,
        "rated": rated, "thumbs_down_share": None if down_share is None else round(down_share, 6),
        "prompt_length": {
            "train_mean_words": round(float(np.mean(train_len)), 3) if train_len else None,
            "live_mean_words": round(float(np.mean(live_len)), 3) if live_len else None,
            "psi": None if psi is None else round(psi, 6)},
        "language": {"train": lang_train, "live": lang_live,
                     "tvd": None if lang_tvd is None else round(lang_tvd, 6)},
        "new_examples": new_examples,
        "retrain_due": bool(reasons), "reasons": reasons,
        "thresholds": {"min_requests": cfg.min_requests,
                       "max_thumbs_down_share": cfg.max_thumbs_down_share,
                       "max_length_psi": cfg.max_length_psi,
                       "max_language_tvd": cfg.max_language_tvd,
                       "min_new_examples": cfg.min_new_examples},
    }
    return report, hist
