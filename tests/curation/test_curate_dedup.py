"""Exact and MinHash-LSH near-dedup (datasketch) on real documents with planted near-duplicates."""
from __future__ import annotations

import pytest

from lmforge.testing.curate import fortune_docs, jsonl_docs


@pytest.fixture(scope="module")
def originals() -> list[tuple[str, str]]:
    return [(d["id"], d["text"]) for d in jsonl_docs() + fortune_docs()]


def test_recall_on_planted_near_duplicates_and_no_false_positive(cfg, originals):
    from lmforge.curation.dedup import Decision, dedup, plant_near_duplicates

    planted = plant_near_duplicates(originals, n=25, seed=7)
    decisions: list[Decision] = list(dedup(originals + [(i, t) for i, t, _ in planted], cfg.dedup))
    by_id = {d.id: d for d in decisions}
    assert all(by_id[i].reason is None for i, _ in originals), "an original was flagged (false positive)"
    found = [p for p in planted if by_id[p[0]].reason and by_id[p[0]].duplicate_of == p[2]]
    wrong = [p for p in planted if by_id[p[0]].reason and by_id[p[0]].duplicate_of != p[2]]
    assert not wrong, f"planted copies matched to the wrong original: {wrong[:3]}"
    assert len(found) / len(planted) >= 0.95
    assert all(by_id[p[0]].reason == "near_dedup" and by_id[p[0]].similarity >= cfg.dedup.threshold
               for p in found)


def test_exact_duplicate_ignores_case_and_whitespace(cfg, originals):
    from lmforge.curation.dedup import dedup

    (i, t) = originals[0]
    out = list(dedup([(i, t), ("copy", "  " + t.upper().replace("\n", " \n "))], cfg.dedup))
    assert out[1].reason == "exact_dedup" and out[1].duplicate_of == i


def test_bad_dedup_params_fail_naming_the_key(params):
    from lmforge.config import ParamsError, section
    from lmforge.curation.curate_config import DataConfig

    bad = {**params["data"], "dedup": {**params["data"]["dedup"], "bands": 20, "rows": 8, "num_perm": 112}}
    with pytest.raises(ParamsError, match=r"data\.dedup: bands\*rows = 160 exceeds num_perm = 112"):
        section(DataConfig, "data", params={"data": bad})
