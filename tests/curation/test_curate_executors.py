"""The curate stage on each executor: the real one-node Slurm (the shard array, datatrove's dedup
stages and finalize as dependent jobs, on the cluster's default partition) and a local Ray
instance give the same curated documents as the local run; a job sbatch refuses ends the stage
with one line carrying sbatch's message; an executor that cannot run fails at start.
(Waiting for the jobs, failed ones and a controller that is down: test_slurm_wait.py.)"""
from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import pytest

from lmforge.testing.curate import REPO, fortune_docs, jsonl_docs


@pytest.fixture(scope="module")
def small(cfg, tmp_path_factory):
    """Real documents without HTML (extraction is the costly step and not what is tested here):
    reStructuredText pages, near and exact copies of some of them in a later source, fortunes.
    A 4-band dedup keeps datatrove's bucket stage at 4 tasks."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from lmforge.curation.curate_config import SourceConfig
    from lmforge.curation.dedup import plant_near_duplicates

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
    from lmforge.curation.curate import CurateOutputs

    return CurateOutputs(root / "data" / "curated", root / "data" / "rejected", root / "metrics" / "curate.json",
                         root / "metrics" / "funnel.csv")


def decisions(out) -> dict:
    import pyarrow.parquet as pq

    cur, rej = pq.read_table(out.curated).to_pylist(), pq.read_table(out.rejected).to_pylist()
    return {r["id"]: None for r in cur} | {r["id"]: (r["reason"], r["duplicate_of"]) for r in rej}


@pytest.fixture(scope="module")
def local_run(small):
    from lmforge.curation.curate import run_curate

    tmp, c = small
    out = outputs(tmp / "local")
    run_curate(c, out)
    return decisions(out)


def clone_params(small, tmp: Path):
    """``edit_params`` for a project clone: the ``small`` curation on Slurm (default partition)."""
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


@pytest.mark.slow
@pytest.mark.timeout(1200)  # about two minutes on a quiet 2-core machine; ten under heavy load
def test_dvc_repro_runs_curate_on_slurm_as_jobs_and_records_its_outputs(slurm, small, local_run, tmp_path):
    """`dvc repro curate` with data.executor: slurm in a clone of the project: the stage submits the
    shard array, datatrove's dedup stages and finalize as dependent jobs to the cluster's default
    partition, waits for them, and DVC records the outputs (nothing left to `dvc commit`): the
    same decisions as the local run."""
    from support.orchestration import clone_project, pipeline_env, run
    from support.slurm import job

    tmp, _ = small
    repo = clone_project(tmp_path / "repo", clone_params(small, tmp))
    environ = pipeline_env(repo)
    p = run(["dvc", "repro", "curate"], repo, env=environ, timeout=1100)
    done = re.findall(r"curate: Slurm step ([\w-]+) done \(\d+ tasks, job (\d+)\)", p.stdout)
    assert [name for name, _ in done] == ["curate-shards", "dedup-signatures", "dedup-buckets",
                                          "dedup-resolve", "curate-finalize"], p.stdout[-3000:]
    for name, job_id in done:   # the stage waited for each: all have ended, on the default partition
        info = job(job_id)
        assert info["JobState"] == "COMPLETED" and info["Partition"] == slurm.partition, (name, info)
        assert name == "curate-shards" or info["Dependency"] == "(null)"   # afterok, met
    assert decisions(outputs(repo)) == local_run
    reasons = {r[0] for r in local_run.values() if r}
    assert {"exact_dedup", "near_dedup"} <= reasons, reasons
    status = run(["dvc", "status", "curate"], repo, env=environ).stdout
    assert "up to date" in status, status


def test_a_job_sbatch_refuses_ends_the_stage_with_one_line_carrying_sbatchs_message(slurm, small, tmp_path):
    """A partition the cluster lacks: the stage exits 2 with sbatch's own words, no traceback."""
    import subprocess

    from support.orchestration import clone_project, pipeline_env

    tmp, _ = small

    def edit(params: dict) -> None:
        clone_params(small, tmp)(params)
        params["data"]["slurm"]["partition"] = "no-such-partition"
    repo = clone_project(tmp_path / "repo", edit)
    p = subprocess.run([sys.executable, "-m", "stages.curate"], cwd=repo, env=pipeline_env(repo),
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 2, p.stderr[-3000:]
    assert "Traceback" not in p.stderr and "CalledProcessError" not in p.stderr, p.stderr[-3000:]
    assert p.stderr.strip().splitlines()[-1] == (
        "curate: sbatch refused the job for step curate-shards (exit 1; partition no-such-partition, "
        "data.slurm): sbatch: error: invalid partition specified: no-such-partition "
        "sbatch: error: Batch job submission failed: Invalid partition name specified")
    assert slurm.cancel_new_jobs() == []   # nothing was submitted


@pytest.mark.timeout(1200)
def test_ray_runs_on_a_local_instance(small, local_run, tmp_path):
    pytest.importorskip("ray")
    import ray

    from lmforge.curation.curate import run_curate

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

    from lmforge.curation.curate import run_curate
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
