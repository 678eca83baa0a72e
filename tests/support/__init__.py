"""Helpers shared by the test rooms: data builders, process starters, stand-ins.

Imported as ``support.<module>``; the repository root is ``support.REPO``.
"""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
