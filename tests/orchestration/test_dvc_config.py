"""The committed DVC config: no analytics or update checks, a default remote, offline plots.

Read through `dvc config --list --project` (DVC's own parser), so a config DVC
would not apply fails here. The plot template must inline vega/vega-lite/
vega-embed and leave out dvc-render's CDN script placeholder.
"""
from __future__ import annotations

import re
from pathlib import Path

from support.orchestration import ROOT, run

TEMPLATE = ROOT / ".dvc" / "plots" / "offline.html"


def test_project_dvc_config():
    cfg = dict(line.split("=", 1) for line in run(["dvc", "config", "--list", "--project"], ROOT).stdout.split())
    assert cfg["core.analytics"] == "false" and cfg["core.check_update"] == "false"
    default = cfg["core.remote"]
    url = cfg[f"remote.{default}.url"]
    # a local folder in the user's home (the committed config says `~/`, DVC expands it):
    # it survives a reboot, unlike /tmp
    assert url == str(Path.home() / ".local/share/lmforge/dvc-remote")
    assert "url = ~/.local/share/lmforge/dvc-remote" in (ROOT / ".dvc" / "config").read_text()
    assert (ROOT / ".dvc" / cfg["plots.html_template"]).resolve() == TEMPLATE.resolve()


def test_default_remote_round_trip_under_home(tmp_path):
    """`dvc push` from one clone and `dvc pull` into another, through the committed default
    remote (HOME points at a scratch folder, so the test never touches the real one)."""
    import os
    import shutil
    import subprocess

    env = {**os.environ, "HOME": str(tmp_path / "home")}
    clones = []
    for name in ("a", "b"):
        repo = tmp_path / name
        (repo / ".dvc").mkdir(parents=True)
        shutil.copy(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
        clones.append(repo)
    a, b = clones
    (a / "data.txt").write_text("feedback\n")
    for cmd in (["dvc", "add", "-q", "data.txt"], ["dvc", "push", "-q"]):
        subprocess.run(cmd, cwd=a, env=env, check=True, capture_output=True)
    assert list((tmp_path / "home" / ".local/share/lmforge/dvc-remote").rglob("*"))
    shutil.copy(a / "data.txt.dvc", b / "data.txt.dvc")
    subprocess.run(["dvc", "pull", "-q"], cwd=b, env=env, check=True, capture_output=True)
    assert (b / "data.txt").read_text() == "feedback\n"


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
