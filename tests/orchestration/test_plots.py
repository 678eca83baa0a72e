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
