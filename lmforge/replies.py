"""What a degenerate reply is, measured the same way at every generation gate.

A model can pass perplexity and refusal checks while it says nothing: a model that
emits its end token at once gives empty replies, one that loops gives a token over
and over. Every gate that generates (after SFT, after DPO, at release, in the deploy
smoke test) measures its greedy replies to the held-out prompts with ``reply_stats``
and checks them against a ``ReplyGate``, so "a working model" means the same thing in
all four places:

- ``empty_share``: replies with no word at all;
- ``short_share``: replies with fewer than ``short_words`` words (empty ones included);
- ``repetition``: per reply of two words or more, the share of its word bigrams that
  repeat an earlier bigram of the same reply (1 − distinct-2), averaged over those
  replies. "the the the the" scores 2/3, a sentence without a repeat 0. When no reply
  has two words it is not measured, and a gate that sets ``max_repetition`` fails.

Words are whitespace-separated, so the measure does not depend on the tokenizer. It stands on
the ground floor because post-training, serving and the release all gate on it.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

from lmforge.config import require
from lmforge.gates import threshold_failures


@dataclasses.dataclass
class ReplyGate:
    """Thresholds on degenerate output; ``null`` switches one off.

    ``mode: fail`` stops the stage, ``warn`` only reports. Defaults: at most 10 % of
    the replies empty or shorter than 5 words, and at most half of a reply's bigrams
    repeats: a mute model fails the first two, a looping one the last."""

    mode: Literal["fail", "warn"] = "fail"
    max_empty_share: float | None = 0.1
    max_short_share: float | None = 0.1
    max_repetition: float | None = 0.5
    short_words: int = 5

    def __post_init__(self):
        for k in ("max_empty_share", "max_short_share", "max_repetition"):
            v = getattr(self, k)
            require(v is None or 0.0 <= v <= 1.0, f"gate.{k} must be in [0, 1] or null, got {v}")
        require(1 <= self.short_words <= 100, f"gate.short_words must be in [1, 100], got {self.short_words}")


@dataclasses.dataclass
class ReplyCheck:
    """Greedy replies to the first ``prompts`` held-out prompts (the instructions stage's
    val split: the same prompts every run), checked by ``gate`` (release, deploy smoke)."""

    data_dir: str = "data/instructions_checked"
    prompts: int = 32
    max_new_tokens: int = 32
    repetition_penalty: float | None = None   # greedy decoding's penalty; null = none (served: the server's default)
    gate: ReplyGate = dataclasses.field(default_factory=ReplyGate)

    def __post_init__(self):
        require(self.repetition_penalty is None or self.repetition_penalty > 0,
                f"repetition_penalty must be > 0 or null, got {self.repetition_penalty}")
        require(self.prompts >= 1, f"prompts must be >= 1, got {self.prompts}")
        require(self.max_new_tokens >= 1, f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


def held_out_prompts(data_dir: str, n: int) -> list[str]:
    """The first ``n`` held-out prompts (val split); a missing split names the stage that makes it."""
    from pathlib import Path

    import pandas as pd

    path = Path(data_dir) / "val.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: held-out val split missing (run the instructions stage)")
    return pd.read_parquet(path).head(n).prompt.tolist()


def repetition(reply: str) -> float | None:
    """1 − distinct-2 over the reply's word bigrams; None below two words."""
    words = reply.split()
    bigrams = list(zip(words, words[1:]))
    if not bigrams:
        return None
    return 1.0 - len(set(bigrams)) / len(bigrams)


def reply_stats(replies: list[str], short_words: int = 5) -> dict:
    """``replies``, ``empty_share``, ``short_share`` and (when measurable) ``repetition``."""
    n = max(1, len(replies))
    words = [len(r.split()) for r in replies]
    out = {"replies": len(replies),
           "empty_share": sum(w == 0 for w in words) / n,
           "short_share": sum(w < short_words for w in words) / n,
           "mean_words": sum(words) / n}
    reps = [x for x in (repetition(r) for r in replies) if x is not None]
    if reps:
        out["repetition"] = sum(reps) / len(reps)
    return out


def reply_failures(stats: dict, gate: ReplyGate, where: str) -> list[str]:
    """Every threshold of ``gate`` that ``stats`` misses, one readable line each (``lmforge.gates``)."""
    bounds = [("empty_share", "<=", gate.max_empty_share), ("short_share", "<=", gate.max_short_share),
              ("repetition", "<=", gate.max_repetition)]
    return threshold_failures(stats, bounds, where, why_unmeasured=" (no reply of two words or more)",
                              notes={"short_share": f" (replies under {gate.short_words} words)"})
