"""Fixtures for tests/evals: offline settings and one tiny random Llama folder per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

for k, v in {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
             "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(k, v)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    """Task YAMLs and params name paths relative to the repository root, as stages run."""
    monkeypatch.chdir(REPO)


