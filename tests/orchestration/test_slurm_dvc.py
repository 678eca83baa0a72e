"""End to end on a tiny DVC+git repo: SLURM executor run, params change, commit diffs, push/pull.

(b) the README's `snakemake --workflow-profile profiles/slurm ...` command on the real one-node
Slurm (support.slurm: no accounting database, `sacct` installed): every stage is a Slurm job on
the default partition with its dvc.yaml resources, and the run ends (the profile reads job
states with squeue). (a) on the tiny repo: see test_graph.py. (c) after a params change, `dvc status`
and `snakemake -n` name the same single stage. (d) `dvc metrics/params/plots diff` between the two
commits, offline plot HTML, and a `dvc push`/`dvc pull` round trip.
The tests share one repo and run in file order (each builds on the last).
"""
from __future__ import annotations

import json
import re
import shutil
from types import SimpleNamespace

import pytest

from support.orchestration import check_repo, env, git_commit, make_tiny_repo, parse_dry_run, render_offline, run


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("orch")
    return SimpleNamespace(base=base, remote=base / "remote",
                           repo=make_tiny_repo(base / "repo", base / "remote"), commits={})


def test_tiny_snakefile_matches_dvc(tiny):
    check_repo(tiny.repo)


def readme_slurm_command() -> list[str]:
    """The README's command for running the pipeline on SLURM, as a user would paste it."""
    import shlex

    from support.orchestration import ROOT

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## On a cluster"):]
    m = re.search(r"`(snakemake --workflow-profile profiles/slurm[^`]*)`", section)
    assert m, "README.md's cluster section shows no `snakemake --workflow-profile profiles/slurm ...` command"
    return shlex.split(m.group(1))


@pytest.fixture(scope="module")
def slurm_run(tiny, slurm):
    # only quicker first status checks and a shorter wait for outputs than a shared filesystem needs
    p = run(readme_slurm_command() + ["--slurm-init-seconds-before-status-checks", "1", "--latency-wait", "5"],
            tiny.repo, env=env(), timeout=400)
    tiny.commits["A"] = git_commit(tiny.repo, "built through SLURM")
    log = p.stdout + p.stderr
    jobs = {rule: job_id for job_id, rule in re.findall(r"with SLURM jobid (\d+) \(log: \S*/rule_(\w+)/", log)}
    return SimpleNamespace(log=log, jobs=jobs)


def dvc_status(repo) -> dict:
    return json.loads(run(["dvc", "status", "--json"], repo).stdout or "{}")


def test_slurm_executor_runs_every_stage_as_a_slurm_job(tiny, slurm, slurm_run):
    from support.slurm import job

    repo = tiny.repo
    assert sorted(p.name for p in (repo / "data/raw").glob("*.txt")) == ["0.txt", "1.txt", "2.txt"]
    assert json.loads((repo / "metrics/count.json").read_text()) == {"docs": 3, "score": 6, "label": "docs"}
    assert (repo / "data/words.txt").read_text() == "hello\n"

    assert set(slurm_run.jobs) == {"prepare", "count", "words"}, slurm_run.log[-3000:]
    info = {rule: job(job_id) for rule, job_id in slurm_run.jobs.items()}
    for rule, i in info.items():
        assert i["JobState"] == "COMPLETED" and i["Comment"] == f"rule_{rule}", i
        assert i["Partition"] == slurm.partition   # the cluster's default: no partition named anywhere
    # meta.resources from dvc.yaml for `prepare`, profile defaults for the rest
    assert info["prepare"]["MinMemoryNode"] == "100M" and info["prepare"]["TimeLimit"] == "00:05:00"
    assert info["count"]["MinMemoryNode"] == "4000M" and info["count"]["TimeLimit"] == "01:00:00"

    # the Snakefile's onsuccess ran `dvc commit`: DVC agrees that all is up to date
    assert dvc_status(repo) == {}
    assert "Nothing to be done" in run(["snakemake", "-n"], repo).stdout


@pytest.fixture(scope="module")
def params_change(tiny, slurm_run):
    repo = tiny.repo
    text = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(text.replace("scale: 2", "scale: 5"))
    seen = SimpleNamespace(
        status=dvc_status(repo),
        snake=parse_dry_run(run(["snakemake", "-n"], repo).stdout))
    run(["snakemake", "--workflow-profile", "profiles/local"], repo)
    tiny.commits["B"] = git_commit(repo, "count.scale 2 -> 5")
    return seen


def test_params_change_reruns_only_the_affected_stage(tiny, params_change):
    assert set(params_change.status) == {"count"}
    jobs = {k: v for k, v in params_change.snake.items() if k != "all"}
    assert set(jobs) == {"count"}
    assert "Params have changed" in jobs["count"]["reason"]
    # after the Snakemake run (and its dvc commit) both tools are idle again
    assert json.loads((tiny.repo / "metrics/count.json").read_text())["score"] == 15
    assert dvc_status(tiny.repo) == {}


def test_metrics_params_and_plots_diff_between_commits(tiny, params_change, tmp_path):
    a, b, repo = tiny.commits["A"], tiny.commits["B"], tiny.repo
    metrics = json.loads(run(["dvc", "metrics", "diff", a, b, "--json"], repo).stdout)
    assert metrics["metrics/count.json"]["score"] == {"old": 6, "new": 15, "diff": 9}
    params = json.loads(run(["dvc", "params", "diff", a, b, "--json"], repo).stdout)
    assert params == {"params.yaml": {"count.scale": {"old": 2, "new": 5, "diff": 3}}}

    out = tmp_path / "plots"
    run(["dvc", "plots", "diff", a, b, "-o", str(out)], repo)
    html = (out / "index.html").read_text()
    assert "vegaEmbed(" in html and "/* vega 5." in html and "/* vega-lite 5." in html
    assert not re.search(r"<script[^>]*\bsrc=", html), "plot page must not load scripts"
    assert "cdn.jsdelivr" not in html
    assert '"value": "15"' in html.replace("'", '"') or '"value":"15"' in html.replace(" ", "")
    render_offline(out / "index.html")


def test_push_and_pull_round_trip(tiny, params_change):
    repo = tiny.repo
    run(["dvc", "push"], repo)
    assert any(p.is_file() for p in tiny.remote.rglob("*"))
    before = {p.relative_to(repo): p.read_bytes() for p in (repo / "data").rglob("*.txt")}
    shutil.rmtree(repo / "data")
    shutil.rmtree(repo / ".dvc" / "cache")
    run(["dvc", "pull"], repo)
    after = {p.relative_to(repo): p.read_bytes() for p in (repo / "data").rglob("*.txt")}
    assert after == before and len(after) == 4
    assert dvc_status(repo) == {}
