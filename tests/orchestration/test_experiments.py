"""`dvc exp` on a tiny stand-in pipeline: the README's Experiments commands work as written.

One `dvc exp run -S`, then a queue of two experiments started with `dvc queue start`;
`dvc exp show --json` must list each with the metrics its params produce, and
`dvc exp diff` must compare two of them.
"""
from __future__ import annotations

import json

from support.orchestration import exp_show, make_tiny_repo, run, start_queue, wait_for_queue


def experiments(repo) -> dict[str, dict]:
    """{experiment name: {"params": count section, "metrics": count.json}} from `dvc exp show --json`."""
    out = {}
    for base in exp_show(repo):
        for exp in base.get("experiments") or []:
            for rev in exp.get("revs") or []:
                data = rev.get("data") or {}
                metrics = (data.get("metrics") or {}).get("metrics/count.json", {}).get("data")
                params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
                if rev.get("name") and metrics:
                    out[rev["name"]] = {"params": params.get("count"), "metrics": metrics}
    return out


def test_exp_run_and_a_queue_of_two(tmp_path):
    repo = make_tiny_repo(tmp_path / "repo", tmp_path / "remote")
    run(["dvc", "exp", "run", "-S", "count.scale=3", "-n", "scale-3"], repo)
    got = experiments(repo)
    assert got["scale-3"]["metrics"]["score"] == 9 and got["scale-3"]["params"]["scale"] == 3

    for scale in (4, 5):
        run(["dvc", "exp", "run", "--queue", "-S", f"count.scale={scale}", "-n", f"scale-{scale}"], repo)
    start_queue(repo)
    try:
        wait_for_queue(repo, {"scale-4", "scale-5"})
    finally:
        run(["dvc", "queue", "stop", "--kill"], repo, check=False)
    got = experiments(repo)
    assert [got[f"scale-{s}"]["metrics"]["score"] for s in (3, 4, 5)] == [9, 12, 15]

    diff = json.loads(run(["dvc", "exp", "diff", "scale-4", "scale-5", "--json"], repo).stdout)
    assert diff["metrics"]["metrics/count.json"]["score"] == {"old": 12, "new": 15, "diff": 3}
    assert diff["params"]["params.yaml"]["count.scale"] == {"old": 4, "new": 5, "diff": 1}
