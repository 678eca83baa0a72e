"""The report card from this repository's metrics: every chart drawn, offline, byte-stable.

The card is written (into a temporary folder) from the committed metrics files and
dvc.lock, twice, and must come out byte-identical; then headless Chromium opens the
HTML with every non-file request aborted: no request may be made, no page error
raised, and each inline SVG chart must render with its data marks.
"""
from __future__ import annotations

from lmforge.report.card import write_card

from support.orchestration import ROOT, render_offline


def test_report_card_is_deterministic_and_draws_offline(tmp_path):
    charts = write_card(ROOT, tmp_path / "a")
    write_card(ROOT, tmp_path / "b")
    for name in ("summary.md", "summary.html"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    md = (tmp_path / "a/summary.md").read_text()
    for heading in ("## Data", "## Tokens", "## Pretraining", "## Post-training: dpo", "## Serving", "## Lineage"):
        assert heading in md
    assert "| gate | PASSED |" in md or "| gate | FAILED" in md
    assert "rejected: " in md and "| models/pretrain/hf |" in md and "| git commit |" in md
    html = (tmp_path / "a/summary.html").read_text()
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert charts >= 12 and html.count("<svg ") == charts and "no data" not in html
    drawn = render_offline(tmp_path / "a/summary.html", charts, selector="svg.chart:has(.series, .bar)")
    assert drawn == charts
