"""Missing or empty feedback is fine; bad feedback is an error naming the file."""
import pandas as pd
import pytest

from lmforge.align.preferences import check_pairs, read_feedback_pairs
from lmforge.align.sft import read_feedback_sft


def test_missing_feedback_folder_gives_zero_rows(tmp_path):
    assert len(read_feedback_pairs(str(tmp_path / "absent"))) == 0
    assert len(read_feedback_sft(str(tmp_path / "absent"))) == 0


def test_empty_feedback_files_give_zero_rows(tmp_path):
    pd.DataFrame({c: pd.Series(dtype=str) for c in ("prompt", "chosen", "rejected", "source")}
                 ).to_parquet(tmp_path / "preferences.parquet")
    pd.DataFrame({c: pd.Series(dtype=str) for c in ("prompt", "completion", "source")}
                 ).to_parquet(tmp_path / "sft.parquet")
    assert len(read_feedback_pairs(str(tmp_path))) == 0
    assert len(read_feedback_sft(str(tmp_path))) == 0


def test_feedback_pairs_are_checked(tmp_path):
    good = {"prompt": ["q1", "q2"], "chosen": ["a", "b"], "rejected": ["c", "d"], "source": ["ui", "ui"]}
    pd.DataFrame(good).to_parquet(tmp_path / "preferences.parquet")
    df = read_feedback_pairs(str(tmp_path))
    assert list(df.source) == ["feedback:ui", "feedback:ui"]
    pd.DataFrame({**good, "rejected": ["c", "b"]}).to_parquet(tmp_path / "preferences.parquet")
    with pytest.raises(ValueError, match=r"preferences.parquet: chosen equals rejected in row\(s\) \[1\]"):
        read_feedback_pairs(str(tmp_path))
    with pytest.raises(ValueError, match="empty 'chosen'"):
        check_pairs(pd.DataFrame({**good, "chosen": ["a", " "]}), "x")
