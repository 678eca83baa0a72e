"""Helpers shared by the test rooms: data builders, stand-ins, property settings.

Imported as ``support.<module>``; the repository root is ``support.REPO``. Fixtures the
benchmarks use too (tiny models, the sample crawl, process starters) live in
``lmforge.testing``, so bench/ never imports from tests/.
"""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
