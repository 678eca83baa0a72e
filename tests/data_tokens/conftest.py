"""Session fixtures for tests/data_tokens: curated corpus, trained tokenizer (see tokens_testdata)."""
from __future__ import annotations

import pytest

from tokens_testdata import _docs, write_curated


@pytest.fixture(scope="session")
def curated_docs() -> list[dict]:
    return _docs()


@pytest.fixture(scope="session")
def curated_dir(tmp_path_factory, curated_docs) -> Path:
    return write_curated(curated_docs, tmp_path_factory.mktemp("curated") / "curated")


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, curated_dir) -> Path:
    from lmforge.data.tokenizer import TokenizerConfig, build

    out = tmp_path_factory.mktemp("models") / "tokenizer"
    build(curated_dir, out, TokenizerConfig(vocab_size=1024, min_frequency=2))
    return out
