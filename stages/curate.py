"""Stage curate: crawl shards (data.sources) -> data/curated/, data/rejected/, funnel metrics.

Reads params `data`; the work is in lmforge.curation.curate (datatrove pipelines per source, then
a global datasketch dedup step; shards already filtered with the same settings come from
`data.cache_dir`). Writes metrics/curate.json and metrics/curate_funnel.csv.
With `data.executor: slurm` it submits the jobs (datatrove's SlurmPipelineExecutor) and waits
for them (`data.slurm.wait`), so `dvc repro` records the outputs; with `wait: false` it returns
at once and `dvc commit curate` records them once the jobs have finished.
"""
from __future__ import annotations

import os

from lmforge.config import section
from lmforge.curation.curate import run_curate
from lmforge.curation.curate_config import DataConfig
from lmforge.stage import run_stage


def main() -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    metrics = run_curate(section(DataConfig, "data"))
    if metrics is None:
        print("curate: Slurm jobs submitted (data.slurm.wait: false); run `dvc commit curate` once they finish")
        return 0
    c, f = metrics["curated"], metrics["funnel"]
    print(f"curate: {metrics['input']['documents']} documents read, {c['documents']} curated "
          f"({c['train']} train / {c['val']} val), {metrics['rejected']['documents']} rejected, "
          f"{metrics['input']['corrupt_files']} corrupt files, {metrics['seconds']} s")
    print("funnel: " + " -> ".join(f"{k} {v}" for k, v in f.items()))
    sh = metrics["shards"]
    print(f"shards: {len(sh['processed'])} filtered, {len(sh['cached'])} from the cache (data.cache_dir)")
    return 0


if __name__ == "__main__":
    run_stage(main)
