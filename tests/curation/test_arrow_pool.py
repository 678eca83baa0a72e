"""Curation processes give Arrow the C library's malloc (lmforge/curation/__init__.py), unless
the user chose a pool; Arrow's default keeps freed pages and the global step grew with the corpus."""
from __future__ import annotations

import os
import subprocess
import sys

from lmforge.testing.curate import REPO

SCRIPT = "import lmforge.curation.curate, pyarrow as pa; print(pa.default_memory_pool().backend_name)"


def _pool(**env) -> str:
    base = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    p = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env={**base, "PYTHONPATH": str(REPO), **env},
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout.strip()


def test_a_curation_process_allocates_arrow_memory_with_malloc():
    assert _pool() == "system"


def test_the_users_choice_of_pool_wins():
    assert _pool(ARROW_DEFAULT_MEMORY_POOL="mimalloc") == "mimalloc"
