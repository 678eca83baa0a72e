"""Preference pairs end the same way on both sides: a reference held to the sample's token budget,
and no pair where one side ended and the other was cut (the asymmetry that let DPO learn
"end now" or "shorter" instead of the content)."""
from __future__ import annotations

import pandas as pd
import pytest

from lmforge.align import preferences
from lmforge.align.preferences import PreferenceConfig, budget_cut, check_pairs, reference_pairs

LONG = "Debian is a free operating system. " * 12
SHORT = "Use ls."


@pytest.fixture(scope="module")
def tok(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def test_budget_cut_holds_a_reference_to_the_sample_budget(tok):
    text, ended = budget_cut(tok, LONG, 10)
    assert not ended and len(tok(text, add_special_tokens=False)["input_ids"]) <= 10 and LONG.startswith(text)
    assert budget_cut(tok, SHORT, 10) == (SHORT, True)


def test_pairs_whose_sides_end_differently_are_dropped(tok, monkeypatch):
    def stub_generate(model, tok, prompts, *, ended, **kw):   # the samples: one cut, one ended
        ended.extend([False, True])
        return ["salad " * 20, "a short one"]

    monkeypatch.setattr(preferences, "generate", stub_generate)
    p = PreferenceConfig(max_new_tokens=10)
    # pair 0: long reference (cut) vs cut sample: kept; pair 1: long reference (cut) vs ended sample: dropped
    df, dropped = reference_pairs(None, tok, ["q0", "q1"], [LONG, LONG], p, seed=0)
    assert dropped == {"identical": 0, "unmatched_ending": 1}
    assert df.prompt.tolist() == ["q0"] and not df.chosen_ended[0] and not df.rejected_ended[0]
    assert len(tok(df.chosen[0], add_special_tokens=False)["input_ids"]) <= 10


def test_asymmetric_pairs_are_refused(tok):
    """The old pairs: the end token after every chosen reply and after no rejected one."""
    df = pd.DataFrame({"prompt": ["a", "b"], "chosen": ["x y", "z w"], "rejected": ["p q", "r s"],
                       "source": "reference", "chosen_ended": [True, True], "rejected_ended": [False, False]})
    with pytest.raises(ValueError, match="end differently"):
        check_pairs(df, "pairs.parquet")
    ok = df.assign(rejected_ended=[True, False], chosen_ended=[True, False])
    assert len(check_pairs(ok, "pairs.parquet")) == 2


def test_dpo_leaves_cut_turns_open():
    """TRL closes every reply with the template's end token; a pair cut on both sides loses it."""
    from datasets import Dataset

    from lmforge.align.dpo import open_cut_turns

    END, NL = 6, 205
    ds = Dataset.from_dict({"prompt_ids": [[1, 2], [1, 2]], "chosen_ids": [[5, 9, END, NL], [5, END, NL]],
                            "rejected_ids": [[7, END, NL], [8, 8, END, NL]], "cut": [True, False]})
    out = open_cut_turns(ds, [2, END])
    assert "cut" not in out.column_names
    assert out[0]["chosen_ids"] == [5, 9] and out[0]["rejected_ids"] == [7]
    assert out[1]["chosen_ids"] == [5, END, NL] and out[1]["rejected_ids"] == [8, 8, END, NL]
