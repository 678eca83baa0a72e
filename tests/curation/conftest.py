"""Session fixtures for tests/curation: params, real sample pages, filter chains (tokens: ../conftest.py)."""
from __future__ import annotations

import importlib.metadata  # noqa: F401
import os

import pytest

from lmforge.testing.curate import REPO, SAMPLE, read_warc_pages

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def params() -> dict:
    from lmforge.config import load_params

    return load_params(REPO / "params.yaml")


@pytest.fixture(scope="session")
def cfg(params):
    from lmforge.config import section
    from lmforge.curation.curate_config import DataConfig

    return section(DataConfig, "data", params=params)


@pytest.fixture(scope="session")
def pages() -> dict[str, bytes]:
    return read_warc_pages()


@pytest.fixture(scope="session")
def filter_chain(cfg, tmp_path_factory):
    """filter_chain(source, cfg=None) -> the source's filter steps, in pipeline order."""
    from datatrove.pipeline.filters.base_filter import BaseFilter

    from lmforge.curation.curate import SourcePlan, build_pipeline

    work = tmp_path_factory.mktemp("work")

    def make(source: str, config=None):
        c = config or cfg
        src = next(s for s in c.sources if s.name == source)
        steps = build_pipeline(c, SourcePlan(c.for_source(src), str(SAMPLE), []), work)
        return [s for s in steps if isinstance(s, BaseFilter)]

    return make

