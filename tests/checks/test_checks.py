"""Great Expectations checks: a passing suite writes its JSON and Data Docs; bad data
raises DataCheckError naming the expectation and the file; the stage exits non-zero."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lmforge.checks.runner import DataCheckError, run_checks
from lmforge.tokens.corpus import curated_files
from lmforge.checks.suites import CuratedChecks, curated_expectations, email_regex, load_curated

from support.tokens import write_curated

REPO = Path(__file__).resolve().parents[2]
LANGS = ["de", "en", "fr"]
SOURCES = ["handbook", "pydoc"]


def test_passing_check_writes_json_and_docs(curated_dir, tmp_path):
    df, owners = load_curated(curated_files(curated_dir))
    out = tmp_path / "gx" / "curated.json"
    result = run_checks(df, "curated", curated_expectations(CuratedChecks(), SOURCES, LANGS), out,
                        tmp_path / "docs", files=owners)
    assert result["success"] is True
    saved = json.loads(out.read_text())
    assert saved["success"] is True and saved["statistics"]["unsuccessful_expectations"] == 0
    assert saved["lmforge"]["rows"] == len(df)
    assert (tmp_path / "docs" / "index.html").is_file()
    assert list((tmp_path / "docs" / "validations").rglob("*.html"))


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_data_docs_are_byte_stable_and_offline(curated_dir, tmp_path):
    """Two checks of the same data give the same Data Docs bytes (no run time, build stamp
    or random element id), so the stage's hashed outputs do not change on a rerun."""
    df, owners = load_curated(curated_files(curated_dir))
    expectations = curated_expectations(CuratedChecks(), SOURCES, LANGS)
    for run in ("a", "b"):
        run_checks(df, "curated", expectations, tmp_path / run / "r.json", tmp_path / run / "docs", files=owners)
    first, second = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []
    pages = [v.decode() for k, v in first.items() if k.endswith(".html")]
    assert len(pages) >= 3 and not any("?d=20" in p or "logo-long.png?" in p for p in pages)
    # other data: another run id, so the two runs' pages are told apart
    run_checks(df.head(5), "curated", expectations, tmp_path / "c" / "r.json", tmp_path / "c" / "docs")
    assert {k for k in _tree(tmp_path / "c") if "validations" in k} != {k for k in first if "validations" in k}


def test_bad_curated_data_names_expectation_and_file(curated_docs, tmp_path):
    good = [dict(d) for d in curated_docs[:10]]
    bad = [dict(d) for d in curated_docs[10:20]]
    bad[0]["id"] = bad[1]["id"]                       # duplicate id
    bad[2]["text"] += "\nWrite to jane.doe@debian.org for help."  # residual e-mail
    bad[3]["language"] = "xx"                         # language outside the allowed set
    write_curated(good, tmp_path / "cur", shards=1)
    pd.DataFrame(bad).to_parquet(tmp_path / "cur" / "part-bad.parquet", index=False)
    df, owners = load_curated(curated_files(tmp_path / "cur"))
    out = tmp_path / "gx.json"
    with pytest.raises(DataCheckError) as err:
        run_checks(df, "curated", curated_expectations(CuratedChecks(), SOURCES, LANGS), out, files=owners)
    msg = str(err.value)
    failed = {f["expectation"] for f in err.value.failures}
    assert failed == {"expect_column_values_to_be_unique", "expect_column_values_to_not_match_regex",
                      "expect_column_values_to_be_in_set"}
    for line in msg.splitlines()[1:]:
        assert "part-bad.parquet" in line and "part-00000" not in line, line
    assert "jane.doe@debian.org" in msg and "'xx'" in msg and "column='language'" in msg
    assert json.loads(out.read_text())["success"] is False  # the result is kept for inspection


def test_email_regex_allows_redaction_placeholders():
    import re

    rx = re.compile(email_regex(["example.com", "example.org"]))
    assert not rx.search("mail email@example.com or firstname.lastname@example.org")
    assert rx.search("mail debian-user@lists.debian.org").group(0) == "debian-user@lists.debian.org"


def test_missing_column_is_reported(tmp_path):
    import great_expectations.expectations as gxe

    df = pd.DataFrame({"id": ["a", "b"]})
    with pytest.raises(DataCheckError, match=r"column='text'.*does not exist.*x\.parquet"):
        run_checks(df, "cols", [gxe.ExpectColumnValuesToNotBeNull(column="text")], tmp_path / "r.json",
                   files="x.parquet")


def test_stage_exits_nonzero_on_failed_check(curated_docs, tmp_path):
    docs = [dict(d) for d in curated_docs[:12]]
    docs[5]["text"] = "too short"
    write_curated(docs, tmp_path / "data" / "curated", shards=2)
    params = (REPO / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(params.replace("languages: null", "languages: [en, de, fr]"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "stages.validate_curated"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "expect_column_value_lengths_to_be_between(column='text'" in proc.stderr, proc.stderr
    assert "data/curated/part-00001.parquet" in proc.stderr  # docs[5] went to the second shard
    assert json.loads((tmp_path / "metrics" / "gx" / "curated.json").read_text())["success"] is False
