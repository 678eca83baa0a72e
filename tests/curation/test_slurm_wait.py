"""Waiting for curation's Slurm jobs (lmforge.curation.slurm_wait) on the real one-node Slurm.

A failed array task fails the wait naming the job, the step and the Slurm log that holds the
error, and cancels what waits on it; a controller that is down for a while (squeue failing) is
waited out, not read as "the job is gone" (which used to cancel a healthy run's later jobs); a
controller down for longer than ``queue_retry_s`` fails the wait and leaves the jobs alone.
"""
from __future__ import annotations

import threading

import pytest

from lmforge.curation.slurm_wait import wait_for_jobs
from lmforge.stage import StageFailure

from support.slurm import executor


def test_a_failed_job_fails_the_wait_naming_job_step_and_log_and_cancels_what_waits(slurm, tmp_path):
    first = executor("first", tmp_path, tasks=1)
    # rank 1 fails at once while rank 0 still runs: the array's base job id then belongs to the
    # ended task, and the running one has an id of its own (squeue's %A), so a wait that read
    # %A took the array for gone and cancelled rank 0 (seen on the real scheduler in CI)
    broken = executor("broken", tmp_path, tasks=2, fail_rank=1, depends=first, seconds=8)
    last = executor("last", tmp_path, tasks=1, seconds=1, depends=broken)
    last.run()   # submits first, broken (each with datatrove's stats-merge job), then last
    with pytest.raises(StageFailure) as e:
        wait_for_jobs([first, broken, last], poll_s=0.5, log=lambda _: None)
    log = tmp_path / "broken" / "slurm_logs" / f"{broken.job_id}_1.out"
    assert str(e.value).startswith(
        f"Slurm job {broken.job_id} (step broken) ended with 1 of 2 tasks not completed (ranks [1]); "
        f"log: {log}; cancelled the jobs waiting on it: ")
    assert "rank 1 fails on purpose" in log.read_text()
    cancelled = str(e.value).rpartition(": ")[2].split(", ")
    assert str(last.job_id) in cancelled and len(cancelled) >= 3   # last, and the stats merges of broken and last
    for job_id in cancelled:
        assert slurm.wait(job_id, timeout=60)["JobState"] == "CANCELLED", job_id
    assert slurm.wait(first.job_id)["JobState"] == "COMPLETED"


def waiting(execs, **kw) -> tuple[threading.Thread, dict, list]:
    """wait_for_jobs in a thread: (thread, its outcome, its log lines)."""
    outcome, lines = {}, []

    def target():
        try:
            outcome["seconds"] = wait_for_jobs(execs, log=lines.append, **kw)
        except StageFailure as e:
            outcome["error"] = str(e)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, outcome, lines


@pytest.mark.slow   # about 55 s: the controller stays down past MessageTimeout (10 s), as squeue waits that long
def test_a_controller_down_is_waited_out_and_only_past_queue_retry_s_fails_the_wait(slurm, tmp_path):
    """While slurmctld is down every squeue fails ("Unable to contact slurm controller") after
    MessageTimeout. A wait with room to retry keeps waiting and ends when the jobs do; one with
    queue_retry_s: 2 fails, naming the jobs it leaves, and cancels nothing."""
    if not slurm.ours:
        pytest.skip("this cluster was not started by .ci/slurm-up.sh: its controller is not the tests' to stop")
    long = executor("long", tmp_path, tasks=1, seconds=40)   # outlives the stop and the first failed squeue
    after = executor("after", tmp_path, tasks=1, depends=long)
    after.run()
    assert slurm.wait_started(long)   # its step runs: srun needs no controller until the task ends
    with slurm.controller_stopped():
        patient, p_outcome, p_lines = waiting([long, after], poll_s=0.5, queue_retry_s=300)
        hasty, h_outcome, _ = waiting([long], poll_s=0.5, queue_retry_s=2)
        hasty.join(60)
        assert patient.is_alive() and not p_outcome
    assert h_outcome["error"].startswith("squeue has failed for "), h_outcome
    assert h_outcome["error"].endswith(f"(data.slurm.queue_retry_s): slurm_load_jobs error: Unable to contact "
                                       f"slurm controller (connect failure); the jobs are left as they are: "
                                       f"{long.job_id}"), h_outcome
    patient.join(180)
    assert not patient.is_alive() and "error" not in p_outcome, p_outcome
    assert any(f"job {long.job_id} is not taken as ended" in ln for ln in p_lines), p_lines
    assert p_lines[-1].startswith("curate: Slurm step after done"), p_lines
    assert slurm.wait(long.job_id)["JobState"] == "COMPLETED"    # neither wait cancelled anything
    assert slurm.wait(after.job_id)["JobState"] == "COMPLETED"


@pytest.mark.parametrize("over, message", [
    ({"queue_retry_s": -1}, "data.slurm.queue_retry_s must be >= 0, got -1.0"),
    ({"partition": " "}, "data.slurm.partition must be a partition name, or null for the cluster's default")])
def test_bad_slurm_settings_are_one_line_naming_the_key(over, message):
    from lmforge.config import ParamsError, build
    from lmforge.curation.curate_config import CurateSlurmConfig

    assert build(CurateSlurmConfig, {}, "data.slurm").partition is None   # the cluster's default
    with pytest.raises(ParamsError) as e:
        build(CurateSlurmConfig, over, "data.slurm")
    assert str(e.value) == message
