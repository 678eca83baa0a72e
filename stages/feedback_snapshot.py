"""Stage feedback_snapshot: the gateway's live log -> the DVC-versioned feedback store.

`lmforge gateway` appends to its live store (params `gateway.store`), which is not DVC
data: it changes with every request. This stage copies what the gateway has
acknowledged into `harvest.store`, a stage output that DVC caches and pushes like any
other data. On a fresh clone, where no gateway has run, the live folder holds only its
README and the snapshot is the empty store, so `dvc repro` and `snakemake` need no
extra step. Harvest reads the snapshot, so new feedback re-enters training as DVC data.
"""
from __future__ import annotations

import sys

from lmforge.config import ParamsError, load_params, value
from lmforge.monitor.store import StoreError, snapshot_store


def main() -> int:
    try:
        params = load_params()
        live, dest = value("gateway.store", str, params), value("harvest.store", str, params)
        counts = snapshot_store(live, dest)
    except (ParamsError, StoreError, OSError) as e:
        print(f"feedback_snapshot: {e}", file=sys.stderr)
        return 2
    print(f"feedback_snapshot: {live} -> {dest}: "
          + ", ".join(f"{n} {c}" for n, c in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
