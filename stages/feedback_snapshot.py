"""Stage feedback_snapshot: the gateway's live log -> the DVC-versioned feedback store.

`lmforge gateway` appends to its live store (params `gateway.store`), which is not DVC
data: it changes with every request. This stage copies what the gateway has
acknowledged into `harvest.store`, a stage output that DVC caches and pushes like any
other data. On a fresh clone, where no gateway has run, the live folder holds only its
README and the snapshot is the empty store, so `dvc repro` and `snakemake` need no
extra step. Harvest reads the snapshot, so new feedback re-enters training as DVC data.
"""
from __future__ import annotations

from lmforge.config import load_params, value
from lmforge.feedback.store import snapshot_store
from lmforge.stage import run_stage


def main() -> int:
    params = load_params()
    live, dest = value("gateway.store", str, params), value("harvest.store", str, params)
    counts = snapshot_store(live, dest)
    print(f"feedback_snapshot: {live} -> {dest}: " + ", ".join(f"{n} {c}" for n, c in counts.items()))
    return 0


if __name__ == "__main__":
    run_stage(main)
