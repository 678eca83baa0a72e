"""Fixtures of the orchestration tests; the helpers themselves are in support.orchestration."""
from __future__ import annotations

from pathlib import Path

import pytest

from support.orchestration import make_fake_slurm_bin


@pytest.fixture(scope="session")
def fake_slurm_bin(tmp_path_factory) -> Path:
    return make_fake_slurm_bin(tmp_path_factory.mktemp("fake_slurm_bin"))
