"""The real one-node Slurm that the SLURM-path tests run against, and helpers to read it.

Why: stand-in ``sbatch``/``squeue`` scripts once hid what a real scheduler does (``sacct``
installed but knowing nothing, a partition the cluster does not have, ``squeue`` failing while
the controller restarts). So these tests submit to a real ``slurmctld``/``slurmd``: the one
``.ci/slurm-up.sh`` starts (Debian's slurm-wlm + munge, no accounting, 4 GPUs as gres on
stand-in device files). The session fixture ``slurm`` (tests/conftest.py) starts it when it is
not up and this is root; otherwise the tests skip, naming why, unless ``LMFORGE_REQUIRE_SLURM=1``
(set by ``.ci/run``), where a cluster that cannot start fails them instead.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UP_SCRIPT = ROOT / ".ci" / "slurm-up.sh"
MARK = "# lmforge one-node test cluster (.ci/slurm-up.sh)"
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL",
         "DEADLINE", "PREEMPTED"}


def sh(*cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return p


def is_up() -> bool:
    if not shutil.which("scontrol"):
        return False
    with contextlib.suppress(subprocess.TimeoutExpired):
        return "UP" in sh("scontrol", "ping", check=False, timeout=30).stdout
    return False


def bring_up() -> str | None:
    """None once the cluster answers; else why it cannot (for the skip)."""
    if is_up():
        return None
    if os.geteuid() != 0:
        return "no Slurm answers `scontrol ping`, and starting one (.ci/slurm-up.sh) needs root"
    p = subprocess.run(["bash", str(UP_SCRIPT)], capture_output=True, text=True, timeout=900)
    if p.returncode or not is_up():
        return f".ci/slurm-up.sh could not start Slurm: {(p.stderr or p.stdout).strip()[-500:]}"
    return None


def job(job_id: str) -> dict[str, str]:
    """``scontrol show job -o ID`` as a dict (first record: an array's first task)."""
    out = sh("scontrol", "show", "job", "-o", str(job_id)).stdout.splitlines()[0]
    fields: dict[str, str] = {}
    for tok in out.split():
        k, _, v = tok.partition("=")
        fields[k] = v
    return fields


def queued(user_jobs_only: bool = True) -> set[str]:
    """Ids of the jobs Slurm lists as pending or running."""
    cmd = ["squeue", "-h", "-o", "%A"] + (["-u", os.environ.get("USER") or "root"] if user_jobs_only else [])
    return set(sh(*cmd).stdout.split())


@dataclass
class Cluster:
    partition: str          # the default partition
    node: str
    gpus: int               # gres/gpu on the node
    ours: bool              # configured by .ci/slurm-up.sh (the tests may stop and start its controller)
    before: frozenset       # jobs queued when the session began: never cancelled by the tests

    def wait(self, job_id: str, timeout: float = 300) -> dict[str, str]:
        """The job's record once it has ended (all of an array's tasks)."""
        deadline = time.monotonic() + timeout
        while True:
            p = sh("squeue", "-h", "-j", str(job_id), "-o", "%T", check=False)
            if p.returncode == 0 and not p.stdout.strip():
                return job(job_id)
            assert time.monotonic() < deadline, f"Slurm job {job_id} still queued after {timeout} s"
            time.sleep(0.5)

    def wait_started(self, ex, timeout: float = 120) -> bool:
        """True once the datatrove executor's first rank runs (its task log exists)."""
        deadline = time.monotonic() + timeout
        log = Path(ex.logging_dir.path) / "logs" / "task_00000.log"
        while not log.exists():
            assert time.monotonic() < deadline, f"Slurm job {ex.job_id}: rank 0 not started after {timeout} s"
            time.sleep(0.2)
        return True

    def cancel_new_jobs(self) -> list[str]:
        """Cancel every job queued since the session began (no stray jobs after a test)."""
        new = sorted(queued() - self.before)
        if new:
            sh("scancel", *new, check=False)
        return new

    @contextlib.contextmanager
    def controller_stopped(self):
        """slurmctld stopped (SIGTERM) while the body runs, started again after it.

        Its state lives in StateSaveLocation, so queued and running jobs survive; meanwhile every
        squeue fails ("Unable to contact slurm controller"), as during a controller restart."""
        pid = int(Path("/run/slurm/slurmctld.pid").read_text())
        os.kill(pid, 15)
        deadline = time.monotonic() + 30   # it saves its state first: seconds on a loaded machine
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if Path(f"/proc/{pid}").exists():   # the body must run with no controller, not a slow one
            os.kill(pid, 9)
            while Path(f"/proc/{pid}").exists():
                time.sleep(0.1)
        try:
            yield
        finally:
            subprocess.run(["slurmctld"], check=True)
            deadline = time.monotonic() + 60
            while not is_up():
                assert time.monotonic() < deadline, "slurmctld did not come back"
                time.sleep(0.5)


def cluster() -> Cluster:
    parts = sh("sinfo", "-h", "-o", "%P").stdout.split()
    default = next(p.rstrip("*") for p in parts if p.endswith("*"))
    node = sh("sinfo", "-h", "-N", "-o", "%N").stdout.split()[0]
    gres = sh("sinfo", "-h", "-N", "-o", "%G").stdout.split()[0]
    gpus = int(gres.split("gpu:")[1].split("(")[0].split(",")[0]) if "gpu:" in gres else 0
    conf = Path("/etc/slurm/slurm.conf")
    ours = conf.exists() and conf.read_text().startswith(MARK) and os.geteuid() == 0
    return Cluster(default, node, gpus, ours, frozenset(queued()))


# Pipeline steps for datatrove executors in the tests (importable: the jobs unpickle them)
def sleep_step(data, rank: int = 0, world_size: int = 1, seconds: float = 0.0, fail_rank: int | None = None):
    """``fail_rank`` fails at once; every other rank sleeps ``seconds`` first, so it outlives it."""
    if rank == fail_rank:
        raise RuntimeError(f"rank {rank} fails on purpose")
    time.sleep(seconds)
    yield from data or ()


def executor(name: str, tmp: Path, tasks: int = 1, seconds: float = 0.0, fail_rank: int | None = None,
             depends=None, partition: str | None = None):
    """A datatrove SlurmPipelineExecutor running ``sleep_step`` on the real cluster."""
    import functools
    import sys

    from datatrove.executor import SlurmPipelineExecutor

    step = functools.partial(sleep_step, seconds=seconds, fail_rank=fail_rank)
    env = f"source {Path(sys.prefix) / 'bin' / 'activate'} && export PYTHONPATH={ROOT / 'tests'}:{ROOT}"
    return SlurmPipelineExecutor([step], tasks=tasks, job_name=name, logging_dir=str(tmp / name), time="10:00",
                                 partition=partition or cluster().partition, cpus_per_task=1, mem_per_cpu_gb=1,
                                 env_command=env, skip_completed=False, depends=depends)
