"""Curation on a Slurm cluster: datatrove's SlurmPipelineExecutor arrays, submitted so that a
refusal reads as one line.

Why: on a real scheduler two things went wrong that stand-in scripts never showed. A fixed
partition name (``cpu``) that the cluster lacks made sbatch refuse the first job; and the refusal
surfaced as a ``CalledProcessError`` traceback from inside datatrove, with sbatch's own message
only on the terminal above it. So ``data.slurm.partition: null`` (the default) submits to the
cluster's default partition (the one ``sinfo`` marks with ``*``, as Snakemake's SLURM profile
does), and a failed submission ends the stage with one line carrying sbatch's message, after
cancelling whatever this run had already submitted.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from lmforge.curation.curate_config import DataConfig
from lmforge.curation.slurm_wait import cancel
from lmforge.stage import InputError


def default_partition() -> str:
    """The partition ``sinfo`` marks as the cluster's default (``debug*``)."""
    try:
        p = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InputError(f"data.slurm.partition is not set and `sinfo` could not list the partitions: {e}") from e
    if p.returncode:
        raise InputError("data.slurm.partition is not set and `sinfo` failed: " + " ".join(p.stderr.split()))
    parts = p.stdout.split()
    default = [x.rstrip("*") for x in parts if x.endswith("*")]
    if not default:
        raise InputError(f"data.slurm.partition is not set and the cluster has no default partition "
                         f"(sinfo lists: {', '.join(parts) or 'none'}); set data.slurm.partition")
    return default[0]


def slurm_executors(cfg: DataConfig, stages: list, work: Path, outputs) -> list:
    """One Slurm array per stage, each depending on the one before; then the finalize job."""
    from datatrove.executor import SlurmPipelineExecutor

    from lmforge.curation.finalize import FinalizeStep

    s = cfg.slurm
    venv = Path(sys.prefix) / "bin" / "activate"
    env = f"source {venv} && " if venv.exists() else ""
    common = dict(time=s.time, partition=s.partition or default_partition(), cpus_per_task=s.cpus_per_task,
                  mem_per_cpu_gb=s.mem_per_cpu_gb, qos=s.qos, sbatch_args=dict(s.sbatch_args) or None,
                  env_command=f"{env}cd {Path.cwd()} && export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1",
                  skip_completed=False)
    execs, before = [], None
    for name, p, n, logs in stages:
        before = SlurmPipelineExecutor(p, tasks=n, workers=-1, job_name=name, logging_dir=str(logs),
                                       depends=before, tasks_per_job=s.tasks_per_job, **common)
        execs.append(before)
    fin = FinalizeStep(cfg, str(work), *(str(Path(p).resolve()) for p in (
        outputs.curated, outputs.rejected, outputs.metrics, outputs.funnel)))
    return [*execs, SlurmPipelineExecutor([fin], tasks=1, job_name="curate-finalize", depends=before,
                                          logging_dir=str(work / "finalize-logs"), **common)]


@contextlib.contextmanager
def stderr_captured() -> Iterator[list[str]]:
    """File descriptor 2 (this process's and its children's, sbatch's included) into a list of
    lines, which are also passed on to the real stderr when the block ends."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile("w+") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read()
            lines += text.splitlines()
            sys.stderr.write(text)
            sys.stderr.flush()


def submit(execs: list) -> None:
    """Submit the chain (the last executor launches the ones it depends on first). When sbatch
    refuses a job, cancel what was submitted and raise InputError with sbatch's message."""
    try:
        with stderr_captured() as err:
            execs[-1].run()
    except subprocess.CalledProcessError as e:
        said = [ln.strip() for ln in err if "sbatch:" in ln] or [ln.strip() for ln in err if ln.strip()][-1:]
        step = next((ex.job_name for ex in execs if not ex.job_id), execs[-1].job_name)
        done = cancel([str(ex.job_id) for ex in execs if ex.job_id])
        raise InputError(
            f"sbatch refused the job for step {step} (exit {e.returncode}; partition "
            f"{execs[0].partition}, data.slurm): {' '.join(said) or 'no message'}"
            + (f"; cancelled the jobs already submitted: {', '.join(done)}" if done else "")) from None
