"""What every benchmark shares: the checkout it measures, found one way.

Why: a benchmark must measure this checkout's ``lmforge``, also where the environment's
editable install points at another checkout (a git worktree, a second clone). Each bench
file is run as a script (``python bench/bench_x.py``, as ``make bench`` does), so Python
puts ``bench/`` first on ``sys.path`` and the file's first project import is

    from _support import REPO  # the checkout's lmforge first on sys.path

which puts the repository root in front of the installed package, once. Fixtures the
benchmarks share with the tests (tiny models, the sample crawl, process starters) come
from ``lmforge.testing``, never from ``tests/``; sibling bench modules (``gguf_export``,
``gpu_check_align``, ``bench_curate_scale``) import by their plain names for the same
reason this module does. Benchmarks run offline, like the pipeline: ``HF_HUB_OFFLINE=1``
unless the caller set it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(1, str(REPO))   # after bench/ (sys.path[0]), before the installed packages
os.environ.setdefault("HF_HUB_OFFLINE", "1")
