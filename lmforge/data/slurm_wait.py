"""Wait for curation's Slurm jobs, so that `dvc repro` and Snakemake see the stage end with its outputs.

Why: datatrove's SlurmPipelineExecutor submits and returns. A stage that returned then would
leave DVC (or Snakemake) looking for outputs that the cluster writes minutes later. So with
``data.slurm.wait`` (the default) the curate stage stays until the last job, finalize, has
ended, the way ``srun`` or Snakemake's own SLURM executor hold their caller. Success is read
from datatrove's completion markers (``<logging_dir>/completions/<rank>``), not from accounting
(``sacct`` may lag or be off on small clusters); the queue is read with ``squeue -j``. A job that
has left the queue with tasks not completed fails the stage, naming the step, its ranks and its
logs, and the jobs still waiting behind it are cancelled (``scancel``): with ``afterok`` they
would otherwise stay pending forever.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from typing import Callable

from lmforge.stage import StageFailure


def in_queue(job_ids: list[str]) -> set[str]:
    """The ids among ``job_ids`` that Slurm still lists (pending or running)."""
    if not job_ids:
        return set()
    p = subprocess.run(["squeue", "-h", "-j", ",".join(job_ids), "-o", "%A|%T"], capture_output=True, text=True)
    if p.returncode:  # "Invalid job id specified": every one of them has ended and been purged
        return set()
    listed = {line.split("|")[0].split("_")[0].strip() for line in p.stdout.splitlines() if line.strip()}
    return listed & set(job_ids)


def _cancel(job_ids: list[str]) -> None:
    if job_ids and shutil.which("scancel"):
        subprocess.run(["scancel", *job_ids], capture_output=True, check=False)


def wait_for_jobs(executors: list, poll_s: float = 10.0, clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep, log: Callable[[str], None] = print) -> float:
    """Block until every executor's tasks have completed; seconds waited.

    ``executors`` are launched datatrove SlurmPipelineExecutors in dependency order (each has
    ``job_id`` and its logging folder). Raises StageFailure when one has left the queue with
    incomplete tasks."""
    t0, pending = clock(), list(executors)
    while pending:
        ex = pending[0]
        missing = ex.get_incomplete_ranks(skip_completed=True)
        if not missing:
            log(f"curate: Slurm step {ex.job_name} done ({ex.world_size} tasks, job {ex.job_id})")
            pending.pop(0)
            continue
        if str(ex.job_id) not in in_queue([str(ex.job_id)]):
            missing = ex.get_incomplete_ranks(skip_completed=True)  # it may have completed meanwhile
            if missing:
                later = [str(e.job_id) for e in pending[1:]]
                _cancel(later)
                raise StageFailure(
                    f"curate: Slurm job {ex.job_id} ({ex.job_name}) ended with {len(missing)} of {ex.world_size} "
                    f"tasks not completed (ranks {missing[:10]}); logs: {ex.logging_dir.path}"
                    + (f"; cancelled the jobs after it: {', '.join(later)}" if later else ""))
            continue
        sleep(poll_s)
    return clock() - t0
