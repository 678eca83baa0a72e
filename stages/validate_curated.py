"""Stage validate_curated: GX checks on data/curated before anything trains on it.

Reads params `checks.curated` (bounds, e-mail placeholders, optional language list)
and `data` (source names; allowed languages unless checks.curated.languages is set).
Writes metrics/gx/curated.json and Data Docs in reports/gx/curated/. A failed check
exits non-zero naming the expectation and the shard, which stops `dvc repro`.
"""
from __future__ import annotations

from lmforge.config import section
from lmforge.checks.runner import check_stage
from lmforge.curation.curate_config import DataConfig
from lmforge.tokens.corpus import curated_files
from lmforge.checks.suites import ChecksConfig, curated_expectations, load_curated
from lmforge.stage import run_stage

CURATED, OUT_JSON, DOCS = "data/curated", "metrics/gx/curated.json", "reports/gx/curated"
SUMMARY = "metrics/gx/curated_summary.json"


def main() -> None:
    checks = section(ChecksConfig, "checks").curated
    data = section(DataConfig, "data")
    languages = checks.languages or sorted(
        {lang for s in data.sources for lang in data.for_source(s).language.allowed})
    df, owners = load_curated(curated_files(CURATED))
    expectations = curated_expectations(checks, [s.name for s in data.sources], languages)
    check_stage("validate_curated", df, "curated", expectations, OUT_JSON, DOCS, SUMMARY,
                files=owners, unit="documents")


if __name__ == "__main__":
    run_stage(main)
