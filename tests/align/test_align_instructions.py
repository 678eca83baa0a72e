"""The committed instruction sample passes its GX suite; bad samples fail it, naming why."""
import pandas as pd
import pytest

from lmforge.testing.align import SAMPLE
from lmforge.align.instructions import InstructionsConfig, check_and_split
from lmforge.checks.runner import DataCheckError


def test_committed_sample_is_small_real_and_licensed():
    assert SAMPLE.stat().st_size <= 5_000_000
    df = pd.read_parquet(SAMPLE)
    assert {"perlfaq", "python_faq", "manpages", "docstrings", "refusal"} <= set(df.source)
    assert df.licence.str.len().min() > 0 and df.prompt.is_unique


def test_splits_are_disjoint_and_refusals_held_out(instr_dir):
    parts = {s: pd.read_parquet(instr_dir / f"{s}.parquet") for s in ("train", "val", "safety")}
    assert set(parts["safety"].source) == {"refusal"}
    assert "refusal" not in set(parts["val"].source)
    assert (parts["train"].source == "refusal").sum() > 0
    prompts = [set(d.prompt) for d in parts.values()]
    assert not (prompts[0] & prompts[1]) and not (prompts[0] & prompts[2])
    assert sum(len(d) for d in parts.values()) == len(pd.read_parquet(SAMPLE))


@pytest.mark.parametrize("corrupt, expectation", [
    (lambda df: df.assign(response=df.response.where(df.index != 3, "write to jane.doe@example.org today")),
     "expect_column_values_to_not_match_regex"),
    (lambda df: pd.concat([df, df.head(1)], ignore_index=True), "expect_column_values_to_be_unique"),
    (lambda df: df.assign(prompt=df.prompt.where(df.index != 5, "   ")), "prompt"),
    (lambda df: df.assign(response=df.response.where(df.index != 7, "x" * 5000)),
     "expect_column_value_lengths_to_be_between"),
])
def test_gx_failure_names_the_expectation_and_writes_nothing(tmp_path, corrupt, expectation):
    bad = tmp_path / "pairs.parquet"
    corrupt(pd.read_parquet(SAMPLE).head(60).copy()).to_parquet(bad)
    out = tmp_path / "checked"
    with pytest.raises(DataCheckError) as e:
        check_and_split(InstructionsConfig(path=str(bad), out_dir=str(out)), str(tmp_path / "gx.json"))
    assert expectation in str(e.value) and str(bad) in str(e.value)
    assert not out.exists() and (tmp_path / "gx.json").exists()


def test_one_line_replies_collapse_whitespace_and_keep_the_split(tmp_path, instr_dir):
    out = tmp_path / "one_line"
    check_and_split(InstructionsConfig(path=str(SAMPLE), out_dir=str(out), one_line_replies=True),
                    str(tmp_path / "gx.json"))
    for split in ("train", "val", "safety"):
        raw, one = pd.read_parquet(instr_dir / f"{split}.parquet"), pd.read_parquet(out / f"{split}.parquet")
        assert one.prompt.tolist() == raw.prompt.tolist()   # the same rows in the same splits
        assert one.response.tolist() == [" ".join(r.split()) for r in raw.response]
    assert pd.read_parquet(instr_dir / "train.parquet").response.str.contains("\n").any()   # FAQ answers wrap
    assert not pd.read_parquet(out / "train.parquet").response.str.contains("\n").any()
