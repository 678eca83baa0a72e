"""The committed dvc.lock is the one `dvc repro` would leave for this code, these params and
these committed metrics: a change to a stage's code or params without a `dvc repro`, or a
tracked metrics file rewritten by one stage but not re-recorded by the stage that reads it
(the report after deploy, which happened twice), shows in `dvc status` of a fresh clone.

A fresh clone has no DVC cache, so stage outputs are "not in cache" and the stages that
read them see them "deleted": those are expected. Everything else is a stale lock.
"""
from __future__ import annotations

import json

from support.orchestration import clone_project, pipeline_env, run

MISSING = {"deleted", "not in cache"}   # a fresh clone's own state, not a stale lock


def stale_entries(status: dict) -> list[str]:
    """`dvc status --json` entries that a `dvc repro` would change, as readable lines."""
    out = []
    for stage, entries in status.items():
        for entry in entries:
            if not isinstance(entry, dict):   # "changed checksum", "always changed", ...
                out.append(f"{stage}: {entry}")
                continue
            for kind, changes in entry.items():
                for path, what in changes.items():
                    if isinstance(what, dict):   # a params file: {key: change}
                        out += [f"{stage}: {kind} {path}:{key} {how}" for key, how in what.items()]
                    elif what not in MISSING:
                        out.append(f"{stage}: {kind} {path} {what}")
    return out


def test_stale_entries_are_found_and_a_fresh_clones_missing_outputs_are_not():
    status = {"curate": [{"changed deps": {"data/feedback/x.parquet": "deleted", "lmforge/curation": "modified"}},
                         {"changed outs": {"data/curated": "not in cache"}}],
              "report": [{"changed deps": {"params.yaml": {"report.title": "modified"}}},
                         {"changed outs": {"reports/summary.md": "modified"}}],
              "deploy": ["changed checksum"], "tokenize": [{"changed outs": {"data/tokens": "deleted"}}]}
    assert stale_entries(status) == ["curate: changed deps lmforge/curation modified",
                                     "report: changed deps params.yaml:report.title modified",
                                     "report: changed outs reports/summary.md modified",
                                     "deploy: changed checksum"]


def test_the_committed_lock_is_what_dvc_repro_would_leave(tmp_path):
    repo = clone_project(tmp_path / "repo")
    status = json.loads(run(["dvc", "status", "--json"], repo, env=pipeline_env(repo)).stdout or "{}")
    stale = stale_entries(status)
    assert not stale, ("dvc.lock does not match this tree: run `dvc repro` (then `dvc repro report` after "
                       "deploy) and commit dvc.lock and the metrics it records:\n  " + "\n  ".join(stale))
