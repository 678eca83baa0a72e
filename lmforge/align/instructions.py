"""Check the committed instruction sample with Great Expectations and split it.

The sample (``data/instructions/pairs.parquet``, built by scripts/build_instructions.py)
is checked before any model sees it: every field non-empty, prompt and response
lengths within bounds, no duplicate prompts, no email address anywhere, a licence on
every row. A failure raises ``DataCheckError`` (lmforge.checks.runner) naming the
expectation and the file, and nothing is written. Passing rows are split
deterministically by a hash of the prompt: refusal examples into ``train`` and a
held-out ``safety`` set (the refusal gate's prompts), everything else into ``train``
and ``val`` (held-out perplexity, preference and win-rate prompts). Last, ``train`` pairs
that carry an evaluation item (a shared 13-gram, lmforge/decontam.py) are moved to
``rejected.parquet`` with reason ``decontamination:<eval set>``: the eval items win, and
the held-out splits stay as they are (the refusal eval set *is* the safety split).
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pandas as pd

from lmforge.config import require
from lmforge.decontam import DecontaminationConfig, drop_contaminated_pairs
from lmforge.io import atomic_dir

COLUMNS = ["prompt", "response", "source", "licence"]
EMAIL_REGEX = r"[\w.+-]+@[\w-]+\.[\w.-]+"
REFUSAL_SOURCE = "refusal"


@dataclasses.dataclass
class InstructionsConfig:
    path: str = "data/instructions/pairs.parquet"
    out_dir: str = "data/instructions_checked"
    val_fraction: float = 0.05
    safety_fraction: float = 0.4  # of the refusal examples, held out for the refusal gate
    min_prompt_chars: int = 5
    max_prompt_chars: int = 300
    min_response_chars: int = 20
    max_response_chars: int = 2000
    # replies as one line (whitespace runs -> one space) for every stage that trains or measures on
    # them: hard-wrapped FAQ answers put a newline every ~70 characters, and a small base that
    # learned "\n -> \n" in pretraining then answers "\n\n\n..." (empty once stripped)
    one_line_replies: bool = False

    def __post_init__(self):
        require(0.0 < self.val_fraction < 0.5, f"val_fraction must be in (0, 0.5), got {self.val_fraction}")
        require(0.0 < self.safety_fraction < 1.0, f"safety_fraction must be in (0, 1), got {self.safety_fraction}")
        require(0 < self.min_prompt_chars <= self.max_prompt_chars, "min/max_prompt_chars out of order")
        require(0 < self.min_response_chars <= self.max_response_chars, "min/max_response_chars out of order")


def expectations(p: InstructionsConfig) -> list:
    import great_expectations.expectations as gxe

    out = [gxe.ExpectTableColumnsToMatchSet(column_set=COLUMNS + ["origin"], exact_match=False)]
    for col in COLUMNS:
        out.append(gxe.ExpectColumnValuesToNotBeNull(column=col))
        out.append(gxe.ExpectColumnValueLengthsToBeBetween(column=col, min_value=1))
        out.append(gxe.ExpectColumnValuesToNotMatchRegex(column=col, regex=r"^\s*$"))
    out += [
        gxe.ExpectColumnValueLengthsToBeBetween(column="prompt", min_value=p.min_prompt_chars,
                                                max_value=p.max_prompt_chars),
        gxe.ExpectColumnValueLengthsToBeBetween(column="response", min_value=p.min_response_chars,
                                                max_value=p.max_response_chars),
        gxe.ExpectColumnValuesToBeUnique(column="prompt"),
        gxe.ExpectColumnValuesToNotMatchRegex(column="prompt", regex=EMAIL_REGEX),
        gxe.ExpectColumnValuesToNotMatchRegex(column="response", regex=EMAIL_REGEX),
        gxe.ExpectColumnDistinctValuesToContainSet(column="source", value_set=[REFUSAL_SOURCE]),
    ]
    return out


def _bucket(text: str) -> float:
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def in_safety_split(prompt: str, safety_fraction: float) -> bool:
    """Whether a refusal example is held out as a safety prompt (also lmforge.builders.items)."""
    return _bucket(prompt) < safety_fraction


def assign_split(df: pd.DataFrame, p: InstructionsConfig) -> pd.Series:
    b = df["prompt"].map(_bucket)
    refusal = df["source"] == REFUSAL_SOURCE
    split = pd.Series("train", index=df.index)
    split[refusal & df["prompt"].map(lambda t: in_safety_split(t, p.safety_fraction))] = "safety"
    split[~refusal & (b < p.val_fraction)] = "val"
    return split


def check_and_split(p: InstructionsConfig, out_json: str, docs_dir: str | None = None,
                    decontam: DecontaminationConfig | None = None) -> dict:
    """Run the GX suite on ``p.path``; on success write train/val/safety parquet files, and the
    train pairs ``decontam`` drops (none when it is None) to rejected.parquet."""
    from lmforge.checks.runner import run_checks

    path = Path(p.path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: instruction sample missing (run scripts/build_instructions.py)")
    df = pd.read_parquet(path)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {COLUMNS}")
    if "origin" not in df.columns:
        df["origin"] = str(path)
    run_checks(df, "instructions", expectations(p), out_json, docs_dir=docs_dir, files=str(path))
    if p.one_line_replies:
        df["response"] = df.response.str.split().str.join(" ")
    df = df.assign(split=assign_split(df, p))
    splits = {s: df[df.split == s].reset_index(drop=True) for s in ("train", "val", "safety")}
    splits["train"], rejected, decont = drop_contaminated_pairs(
        splits["train"], decontam or DecontaminationConfig(enabled=False), ["prompt", "response"])
    for s, part in splits.items():
        if len(part) == 0:
            raise ValueError(f"{path}: split '{s}' is empty after splitting {len(df)} rows"
                             f"{' and decontamination' if s == 'train' else ''}; add data "
                             "or change instructions.val_fraction / safety_fraction")
    with atomic_dir(p.out_dir) as tmp:
        for s, part in splits.items():
            part.to_parquet(tmp / f"{s}.parquet", index=False)
        rejected.to_parquet(tmp / "rejected.parquet", index=False)
    kept = pd.concat(splits.values())
    return {"rows": len(df), **{f"rows_{s}": len(part) for s, part in splits.items()},
            "sources": {k: int(v) for k, v in kept.groupby("source").size().items()},
            "decontamination": decont}
