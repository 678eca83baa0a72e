"""The curate stage on each executor: Slurm (stand-in sbatch/sacct/scontrol/srun running the
shard array, datatrove's dedup stages and finalize as dependent jobs) and a local Ray instance
give the same curated documents as the local run; an executor that cannot run fails at start."""
from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.curate import REPO, fortune_docs, jsonl_docs
from support.orchestration import make_fake_slurm_bin


@pytest.fixture(scope="module")
def small(cfg, tmp_path_factory):
    """Real documents without HTML (extraction is the costly step and not what is tested here):
    reStructuredText pages, near and exact copies of some of them in a later source, fortunes.
    A 4-band dedup keeps datatrove's bucket stage at 4 tasks."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from lmforge.data.curate_config import SourceConfig
    from lmforge.data.dedup import plant_near_duplicates

    tmp = tmp_path_factory.mktemp("executors")
    (tmp / "in").mkdir()
    docs = jsonl_docs()[:12]
    planted = plant_near_duplicates([(d["id"], d["text"]) for d in docs], n=3, seed=1)
    by_id = {d["id"]: d["text"] for d in docs}
    copies = ([{"id": i, "text": t} for i, t, _ in planted]
              + [{"id": f"exact-{k}", "text": by_id[o]} for k, (_, _, o) in enumerate(planted)])
    for name, rows in (("rst", docs), ("copies", copies)):
        (tmp / "in" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(fortune_docs()[:8]), tmp / "in" / "fortunes.parquet")
    rst = cfg.sources[2]
    srcs = [dataclasses.replace(rst, path=str(tmp / "in" / "rst.jsonl")),
            dataclasses.replace(rst, name="copies", path=str(tmp / "in" / "copies.jsonl")),
            SourceConfig("fortunes", str(tmp / "in" / "fortunes.parquet"), "parquet")]
    dedup = dataclasses.replace(cfg.dedup, num_perm=32, bands=4, rows=8)
    # no shard cache: every run here must really run its shard tasks on its executor
    return tmp, dataclasses.replace(cfg, sources=srcs, workers=2, review_labels=None, dedup=dedup, cache_dir=None,
                                    decontamination=dataclasses.replace(cfg.decontamination, enabled=False))


def outputs(root: Path):
    from lmforge.data.curate import CurateOutputs

    return CurateOutputs(root / "data" / "curated", root / "data" / "rejected", root / "metrics" / "curate.json",
                         root / "metrics" / "funnel.csv")


def decisions(out) -> dict:
    import pyarrow.parquet as pq

    cur, rej = pq.read_table(out.curated).to_pylist(), pq.read_table(out.rejected).to_pylist()
    return {r["id"]: None for r in cur} | {r["id"]: (r["reason"], r["duplicate_of"]) for r in rej}


@pytest.fixture(scope="module")
def local_run(small):
    from lmforge.data.curate import run_curate

    tmp, c = small
    out = outputs(tmp / "local")
    run_curate(c, out)
    return decisions(out)


def wait_for_jobs(state: Path, timeout: float = 900) -> dict[str, str]:
    """Job name -> exit code, once every submitted job has ended and no new one appears."""
    deadline, seen = time.monotonic() + timeout, -1
    while time.monotonic() < deadline:
        names = sorted((state / "jobs").glob("*.name"))
        if names and len(names) == seen and all(n.with_suffix(".rc").exists() for n in names):
            return {n.read_text().strip() + "#" + n.stem: n.with_suffix(".rc").read_text().strip() for n in names}
        seen = len(names)
        time.sleep(1)
    raise AssertionError(f"Slurm jobs still running after {timeout} s: {sorted(p.name for p in state.rglob('*'))}")


def stop_jobs(state: Path) -> None:
    """End the jobs of a failed run (their shells and what they started), not leave them running."""
    import os
    import signal

    for pid_file in (state / "jobs").glob("*.pid"):
        if not pid_file.with_suffix(".rc").exists():
            pid = int(pid_file.read_text())
            for child in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split():
                subprocess.run(["pkill", "-TERM", "-P", child], check=False)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(child), signal.SIGTERM)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def clone_params(small, tmp: Path):
    """``edit_params`` for a project clone: the ``small`` curation on the stand-in Slurm."""
    _, c = small

    def edit(params: dict) -> None:
        d = params["data"]
        rst = next(s for s in d["sources"] if s["name"] == "pydoc_rst")
        d["sources"] = [{**rst, "path": str(tmp / "in" / "rst.jsonl")},
                        {**rst, "name": "copies", "path": str(tmp / "in" / "copies.jsonl")},
                        {"name": "fortunes", "path": str(tmp / "in" / "fortunes.parquet"), "format": "parquet"}]
        d.update(executor="slurm", workers=2, cache_dir=None)
        d["slurm"].update(tasks_per_job=8, poll_s=1)  # one process per stage
        d["dedup"].update(engine="datatrove", num_perm=c.dedup.num_perm, bands=c.dedup.bands, rows=c.dedup.rows)
        d["decontamination"]["enabled"] = False
    return edit


@pytest.mark.timeout(1200)  # about two minutes on a quiet 2-core machine; ten under heavy load
def test_dvc_repro_runs_curate_on_slurm_as_jobs_and_records_its_outputs(small, local_run, tmp_path, request):
    """`dvc repro curate` with data.executor: slurm in a clone of the project: the stage submits the
    shard array, datatrove's dedup stages and finalize as dependent jobs, waits for them, and DVC
    records the outputs (nothing left to `dvc commit`): the same decisions as the local run."""
    from support.orchestration import clone_project, pipeline_env, run

    tmp, _ = small
    repo = clone_project(tmp_path / "repo", clone_params(small, tmp))
    state = tmp_path / "slurm"
    state.mkdir()
    (tmp_path / "bin").mkdir()
    bin_dir = make_fake_slurm_bin(tmp_path / "bin")
    request.addfinalizer(lambda: stop_jobs(state))
    environ = pipeline_env(repo, FAKE_SLURM_DIR=str(state))
    environ["PATH"] = f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin"
    p = run(["dvc", "repro", "curate"], repo, env=environ, timeout=1100)
    assert "Slurm step curate-finalize done" in p.stdout, p.stdout[-3000:]
    jobs = wait_for_jobs(state, timeout=60)  # all ended already: the stage waited for them
    assert set(jobs.values()) == {"0"}, jobs  # each stage's array and datatrove's merge_stats job
    names = [k.split("#")[0] for k in sorted(jobs, key=lambda k: k.split("#")[1])]
    assert list(dict.fromkeys(names)) == ["curate-shards", "dedup-signatures", "dedup-buckets",
                                          "dedup-resolve", "curate-finalize"], jobs
    argv = " ".join(p.read_text() for p in (state / "jobs").glob("*.argv"))
    assert "--dependency=afterok:" in argv
    assert decisions(outputs(repo)) == local_run
    reasons = {r[0] for r in local_run.values() if r}
    assert {"exact_dedup", "near_dedup"} <= reasons, reasons
    status = run(["dvc", "status", "curate"], repo, env=environ).stdout
    assert "up to date" in status, status


def test_a_failed_slurm_step_fails_the_stage_naming_it_and_cancels_the_rest(tmp_path, monkeypatch):
    """A job that leaves the queue with tasks not completed ends the wait with the step, its
    ranks and its logs; the jobs still waiting behind it are cancelled."""
    from datatrove.executor import SlurmPipelineExecutor

    from lmforge.data.slurm_wait import wait_for_jobs as wait
    from lmforge.stage import StageFailure

    state = tmp_path / "slurm"
    (state / "jobs").mkdir(parents=True)
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", f"{make_fake_slurm_bin(tmp_path / 'bin')}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(state))
    execs = []
    for k, (name, rc) in enumerate((("shards", "0"), ("dedup", "1"), ("finalize", None))):
        ex = SlurmPipelineExecutor([], tasks=2, job_name=name, logging_dir=str(tmp_path / name), time="1:00",
                                   partition="cpu", skip_completed=False)
        ex.job_id = str(2000 + k)
        (state / "jobs" / f"{ex.job_id}.name").write_text(name)
        if rc is not None:
            (state / "jobs" / f"{ex.job_id}.rc").write_text(rc)
        execs.append(ex)
    for rank in (0, 1):
        execs[0].mark_rank_as_completed(rank)
    execs[1].mark_rank_as_completed(0)
    cancelled = tmp_path / "scancel.log"
    (tmp_path / "bin" / "scancel").write_text(f"#!/bin/sh\necho \"$@\" >> {cancelled}\n")
    (tmp_path / "bin" / "scancel").chmod(0o755)
    with pytest.raises(StageFailure) as e:
        wait(execs, poll_s=0.01, log=lambda _: None)
    assert str(e.value) == (f"curate: Slurm job 2001 (dedup) ended with 1 of 2 tasks not completed (ranks [1]); "
                            f"logs: {tmp_path / 'dedup'}; cancelled the jobs after it: 2002")
    assert cancelled.read_text().split() == ["2002"]


@pytest.mark.timeout(1200)
def test_ray_runs_on_a_local_instance(small, local_run, tmp_path):
    pytest.importorskip("ray")
    import ray

    from lmforge.data.curate import run_curate

    tmp, c = small
    out = outputs(tmp_path)
    c = dataclasses.replace(c, executor="ray", dedup=dataclasses.replace(c.dedup, engine="datatrove"))
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    try:
        run_curate(c, out)
    finally:
        ray.shutdown()
    assert decisions(out) == local_run


@pytest.mark.parametrize("kind, needs", [("slurm", "no `sbatch` on PATH"), ("ray", "`ray` package is not installed")])
def test_an_executor_that_cannot_run_fails_at_start_naming_it(small, kind, needs, monkeypatch):
    import importlib.util

    from lmforge.data.curate import run_curate
    from lmforge.stage import BAD_INPUT, exit_code

    tmp, c = small
    monkeypatch.setenv("PATH", "/nonexistent")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "ray" else real(n, *a))
    with pytest.raises(Exception) as e:
        run_curate(dataclasses.replace(c, executor=kind), outputs(tmp / "never"))
    assert exit_code(e.value) == BAD_INPUT and str(e.value) == f"data.executor: {kind}, but " + (
        "there is " if kind == "slurm" else "the ") + needs + ("" if kind == "slurm" else " (pip install ray)")
    assert not (tmp / "never").exists()
