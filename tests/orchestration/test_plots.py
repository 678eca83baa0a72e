"""The project's own charts: every top-level plot of dvc.yaml loads and draws offline.

`dvc plots show` on this repository (the committed metrics files, DVCLive folders
included) must report no missing file, and its HTML, built from the inlined vega
template, must draw one vega view per chart in Chromium without any network request.
"""
from __future__ import annotations

import json
import re

import yaml

from support.orchestration import ROOT, render_offline, run


def test_every_top_level_plot_draws_offline(tmp_path):
    names = [next(iter(p)) for p in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]]
    assert len(names) >= 12
    shown = json.loads(run(["dvc", "plots", "show", "--json"], ROOT).stdout)
    assert not shown.get("errors"), shown["errors"]
    assert sorted(shown["data"]) == sorted(names)

    out = tmp_path / "plots"
    run(["dvc", "plots", "show", "-o", str(out)], ROOT)
    html = (out / "index.html").read_text()
    assert not re.search(r"<script[^>]*\bsrc=", html) and "cdn.jsdelivr" not in html
    assert render_offline(out / "index.html", charts=len(names)) == len(names)


def test_pretraining_plots_draw_mid_run_from_the_dvclive_files(tmp_path):
    """Two steps logged and no checkpoint yet (so no CSV flushed): `dvc plots show`, with the
    pretraining charts of dvc.yaml, already draws both steps of every chart."""
    from types import SimpleNamespace

    from lmforge.train.logs import StepLog
    from lmforge.train.trainer import Outputs

    plots = [p for p in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
             if next(iter(p)).startswith("Pretraining")]
    assert len(plots) == 5
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"plots": plots}, sort_keys=False))
    run(["dvc", "init", "--no-scm", "-q"], repo)
    out = Outputs(**{k: str(repo / v) for k, v in vars(Outputs()).items()})
    log = StepLog(SimpleNamespace(progress=False), 0, out, {"step": 0, "history": [], "timing": [], "evals": [],
                                                               "tokens": 0}, total=10)
    log.eval(0, 8.0)
    log.step(1, 7.5, 1e-3, 1.0, 1000.0, 0.1)
    log.step(2, 7.0, 2e-3, 0.9, 1100.0, 0.2)
    assert not (repo / "metrics/pretrain_steps.csv").exists()   # the checkpointed record: not yet flushed
    shown = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)
    assert not shown.get("errors"), shown["errors"]
    for name, charts in shown["data"].items():
        steps = sorted(int(r["step"]) for r in charts[0]["content"]["data"]["values"])
        assert steps == ([0, 1, 2] if name.startswith("Pretraining loss") else [1, 2]), (name, steps)
