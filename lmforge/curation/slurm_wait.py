"""Wait for curation's Slurm jobs, so that `dvc repro` and Snakemake see the stage end with its outputs.

Why: datatrove's SlurmPipelineExecutor submits and returns. A stage that returned then would
leave DVC (or Snakemake) looking for outputs that the cluster writes minutes later. So with
``data.slurm.wait`` (the default) the curate stage stays until the last job, finalize, has
ended, the way ``srun`` or Snakemake's own SLURM executor hold their caller. Success is read
from datatrove's completion markers (``<logging_dir>/completions/<rank>``), not from accounting
(``sacct`` may lag or be off on small clusters); the queue is read with ``squeue -j``.

A job that has left the queue with tasks not completed fails the stage, naming the job, the step,
its ranks and the Slurm log of the first one; the jobs still waiting behind it (later steps and
datatrove's stats-merge jobs) are cancelled (``scancel``): with ``afterok`` they would otherwise
stay pending forever. ``squeue`` failing is not a job leaving: while the controller restarts or
times out, squeue exits non-zero ("Unable to contact slurm controller", "Socket timed out"), and
reading that as "gone" once cancelled a healthy run. Only "Invalid job id" (a job purged after
MinJobAge) means gone; other failures are retried for ``data.slurm.queue_retry_s`` seconds, after
which the stage fails and leaves the jobs alone.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

from lmforge.stage import StageFailure

SQUEUE_TIMEOUT_S = 120   # one squeue call; a stopped controller makes it hang for MessageTimeout


class QueueUnavailable(RuntimeError):
    """``squeue`` did not answer (the controller is down, restarting or timing out)."""


def in_queue(job_ids: list[str]) -> set[str]:
    """The ids among ``job_ids`` that Slurm still lists (pending or running).

    Raises QueueUnavailable when squeue fails for any reason other than the jobs being unknown."""
    if not job_ids:
        return set()
    try:
        # %F: the array's base job id, the one datatrove holds; %A would name each running array
        # task by an id of its own, and the base id would vanish when its own task ended first
        p = subprocess.run(["squeue", "-h", "-j", ",".join(job_ids), "-o", "%F|%T"], capture_output=True,
                           text=True, timeout=SQUEUE_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise QueueUnavailable(f"squeue did not answer in {SQUEUE_TIMEOUT_S} s") from e
    if p.returncode:
        err = " ".join(p.stderr.split())
        if "Invalid job id" in err:   # every one of them has ended and been purged
            return set()
        raise QueueUnavailable(err or f"squeue exited with {p.returncode}")
    listed = {line.split("|")[0].split("_")[0].strip() for line in p.stdout.splitlines() if line.strip()}
    return listed & set(job_ids)


def dependants(job_ids: list[str]) -> list[str]:
    """Pending jobs that wait (``--dependency``), directly or through each other, on ``job_ids``."""
    p = subprocess.run(["squeue", "-h", "-t", "PENDING", "-o", "%A|%E"], capture_output=True, text=True,
                       timeout=SQUEUE_TIMEOUT_S)
    waits = {}
    for line in p.stdout.splitlines() if p.returncode == 0 else []:
        jid, _, dep = line.partition("|")
        # "afterok:12_*(unfulfilled),afterany:13(failed)" -> {"12", "13"}
        waits[jid.strip()] = {part.split(":", 1)[1].split("(")[0].split("_")[0]
                              for part in dep.split(",") if ":" in part}
    found, frontier = [], set(job_ids)
    while frontier:
        new = sorted(j for j, on in waits.items() if on & frontier and j not in found and j not in job_ids)
        found += new
        frontier = set(new)
    return found


def cancel(job_ids: list[str]) -> list[str]:
    """Cancel ``job_ids`` and every pending job waiting on them; the ids cancelled."""
    job_ids = [j for j in job_ids if j and j != "-1"]
    if not job_ids or not shutil.which("scancel"):
        return []
    every = job_ids + dependants(job_ids)
    subprocess.run(["scancel", *every], capture_output=True, check=False)
    return every


def slurm_log(ex, rank: int) -> str:
    """Where Slurm wrote the output of ``rank``'s array task (datatrove's ``%A_%a.out``)."""
    ranks_file = Path(ex.logging_dir.resolve_paths("ranks_to_run.json"))
    order = json.loads(ranks_file.read_text()) if ranks_file.exists() else list(range(ex.world_size))
    index = order.index(rank) // ex.tasks_per_job if rank in order else rank // ex.tasks_per_job
    return os.path.join(ex.slurm_logs_folder, f"{ex.job_id}_{index}.out")


def wait_for_jobs(executors: list, poll_s: float = 10.0, clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep, log: Callable[[str], None] = print,
                  queue_retry_s: float = 600.0) -> float:
    """Block until every executor's tasks have completed; seconds waited.

    ``executors`` are launched datatrove SlurmPipelineExecutors in dependency order (each has
    ``job_id`` and its logging folder). Raises StageFailure when one has left the queue with
    incomplete tasks, or when squeue has failed for longer than ``queue_retry_s``."""
    t0, pending, failing_since = clock(), list(executors), None
    while pending:
        ex = pending[0]
        missing = ex.get_incomplete_ranks(skip_completed=True)
        if not missing:
            log(f"curate: Slurm step {ex.job_name} done ({ex.world_size} tasks, job {ex.job_id})")
            pending.pop(0)
            continue
        asked = clock()
        try:
            listed = str(ex.job_id) in in_queue([str(ex.job_id)])
        except QueueUnavailable as e:   # a failed call may itself take MessageTimeout: count from its start
            failing_since = asked if failing_since is None else failing_since
            if clock() - failing_since > queue_retry_s:
                raise StageFailure(
                    f"squeue has failed for {clock() - failing_since:.0f} s (data.slurm.queue_retry_s): "
                    f"{e}; the jobs are left as they are: {', '.join(str(x.job_id) for x in pending)}") from e
            log(f"curate: squeue failed ({e}); job {ex.job_id} is not taken as ended, retrying in {poll_s:g} s")
            sleep(poll_s)
            continue
        failing_since = None
        if not listed:
            missing = ex.get_incomplete_ranks(skip_completed=True)  # it may have completed meanwhile
            if missing:
                later = [str(e.job_id) for e in pending[1:]]
                cancelled = cancel([str(ex.job_id), *later])
                raise StageFailure(
                    f"Slurm job {ex.job_id} (step {ex.job_name}) ended with {len(missing)} of "
                    f"{ex.world_size} tasks not completed (ranks {missing[:10]}); log: {slurm_log(ex, missing[0])}"
                    + (f"; cancelled the jobs waiting on it: {', '.join(c for c in cancelled if c != str(ex.job_id))}"
                       if len(cancelled) > 1 else ""))
            continue
        sleep(poll_s)
    return clock() - t0
