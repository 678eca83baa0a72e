"""The committed DVC config: no analytics or update checks, a default remote, offline plots.

Read through `dvc config --list --project` (DVC's own parser), so a config DVC
would not apply fails here. The plot template must inline vega/vega-lite/
vega-embed and leave out dvc-render's CDN script placeholder.
"""
from __future__ import annotations

import re

from .conftest import ROOT, run

TEMPLATE = ROOT / ".dvc" / "plots" / "offline.html"


def test_project_dvc_config():
    cfg = dict(line.split("=", 1) for line in run(["dvc", "config", "--list", "--project"], ROOT).stdout.split())
    assert cfg["core.analytics"] == "false" and cfg["core.check_update"] == "false"
    default = cfg["core.remote"]
    assert cfg[f"remote.{default}.url"].startswith("/"), "default remote is a local path"
    assert (ROOT / ".dvc" / cfg["plots.html_template"]).resolve() == TEMPLATE.resolve()


def test_offline_plot_template():
    html = TEMPLATE.read_text(encoding="utf-8")
    assert "{plot_divs}" in html and "{scripts}" not in html
    assert not re.search(r"<script[^>]*\bsrc=", html)
    for name, marker in [("vega", "vega={}"), ("vega-lite", ".vegaLite"), ("vega-embed", ".vegaEmbed=")]:
        assert f"/* {name} " in html, name
        assert marker in html, name
    assert TEMPLATE.stat().st_size < 1_200_000
    licences = (TEMPLATE.parent / "LICENSES.md").read_text()
    assert licences.count("BSD-3-Clause") >= 3
