"""The curate pipeline's steps are built without datatrove scanning every installed package
(lmforge/curation/dependency_check.py), and the check still answers as datatrove's own does."""
from __future__ import annotations

import importlib.metadata

import pytest


def _datatrove_scan(name: str):  # datatrove 0.10's own check, as written there, uncached
    found = None
    for dist in importlib.metadata.distributions():
        metadata = getattr(dist, "metadata", None)
        dist_name = metadata.get("Name") if metadata is not None else None
        if dist_name and dist_name.lower() == name:
            found = True
    return found


@pytest.mark.parametrize("name", ["spacy", "pyarrow", "faust-cchardet", "warcio", "tldextract", "not-a-package-xyz"])
def test_the_check_gives_datatrove_answer(name):
    from lmforge.curation.dependency_check import is_distribution_available

    assert is_distribution_available(name) == _datatrove_scan(name)


def test_building_the_pipeline_reads_no_other_package_metadata(cfg, monkeypatch, tmp_path):
    from datatrove.utils import _import_utils

    from lmforge.curation import curate

    def scan():
        raise AssertionError("datatrove scanned every installed distribution")

    _import_utils._is_distribution_available.cache_clear()
    monkeypatch.setattr(importlib.metadata, "distributions", scan)
    for sp in curate.plan(cfg):
        assert curate.build_pipeline(cfg, sp, tmp_path)
