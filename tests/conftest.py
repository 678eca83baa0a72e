"""Fixtures every test room shares: offline settings, a tiny model, a curated corpus.

Test rooms mirror lmforge/ (tests/<room>/); helpers they share are modules of
tests/support/, imported as ``support.<name>`` (pytest's ``pythonpath`` puts tests/
on sys.path). Expensive fixtures are session-scoped and built on first use.

Two tiers: ``pytest -m "not slow"`` is the fast loop (every room, under 4 minutes on two
cores); ``make test`` (CI) runs everything. A test is slow when it carries
``@pytest.mark.slow`` or when its node id starts with a line of ``tests/slow.txt``: the
list of end-to-end checks measured at over ~10 s (``pytest --durations=0``), kept as data
so that re-measuring moves a line, not a decorator.

Logging is configured as a stage configures it (``lmforge.logconfig``), so library code
called in-process shows its progress lines on the (captured) stdout as under ``run_stage``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from lmforge.logconfig import configure as configure_logging

for _k, _v in {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(_k, _v)

configure_logging()

SLOW_LIST = Path(__file__).with_name("slow.txt")


def _slow_prefixes() -> tuple[str, ...]:
    lines = (line.split("#", 1)[0].strip() for line in SLOW_LIST.read_text().splitlines())
    return tuple(line for line in lines if line)


def pytest_collection_modifyitems(config, items):
    prefixes = _slow_prefixes()
    for item in items:
        if item.nodeid.startswith(prefixes):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random Llama + tokenizer folder with the release's shape (lmforge.testing.tiny_model)."""
    from lmforge.testing.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def curated_docs() -> list[dict]:
    from support.tokens import _docs

    return _docs()


@pytest.fixture(scope="session")
def curated_dir(tmp_path_factory, curated_docs) -> Path:
    from support.tokens import write_curated

    return write_curated(curated_docs, tmp_path_factory.mktemp("curated") / "curated")


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, curated_dir) -> Path:
    from lmforge.tokens.tokenizer import TokenizerConfig, build

    out = tmp_path_factory.mktemp("models") / "tokenizer"
    build(curated_dir, out, TokenizerConfig(vocab_size=1024, min_frequency=2))
    return out


@pytest.fixture(scope="session")
def slurm():
    """The real one-node Slurm (support.slurm): started when needed and possible, else a skip
    naming why (a failure under LMFORGE_REQUIRE_SLURM=1, as .ci/run sets). Jobs the tests
    leave queued are cancelled at the end of the session."""
    from support.slurm import bring_up, cluster

    why = bring_up()
    if why:
        if os.environ.get("LMFORGE_REQUIRE_SLURM") == "1":
            pytest.fail(f"LMFORGE_REQUIRE_SLURM=1, but {why}")
        pytest.skip(why)
    c = cluster()
    yield c
    c.cancel_new_jobs()
