"""The shard cache's code fingerprint covers every curation module a shard's steps import.

`shard_cache._CODE` is a hand-kept list: a module the per-shard steps import but the list
misses would let a cached shard survive a change of that module's code (stale filter results).
"""
from __future__ import annotations

from pathlib import Path

from lmforge.codedeps import closure
from lmforge.curation.shard_cache import _CODE

ROOT = Path(__file__).resolve().parents[2]
NO_OUTPUT_EFFECT = {"dependency_check"}   # datatrove's install check: decides nothing about documents


def test_fingerprint_lists_every_curation_module_the_shard_steps_import():
    listed = set(_CODE)
    missing: dict[str, set[str]] = {}
    for name in listed - {"curate"}:   # curate: build_pipeline is per shard, the global step is not
        for f in closure(ROOT, "lmforge.curation." + name.replace("/", ".")):
            rel = f.removeprefix("lmforge/curation/").removesuffix(".py")
            if f.startswith("lmforge/curation/") and not rel.endswith("__init__") and rel not in listed:
                missing.setdefault(rel, set()).add(name)
    assert set(missing) <= NO_OUTPUT_EFFECT, f"add to shard_cache._CODE: {missing}"
