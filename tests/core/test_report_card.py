"""The report card from this repository's metrics: every chart drawn, offline, byte-stable.

The card is written (into a temporary folder) from the committed metrics files and
dvc.lock, twice, and must come out byte-identical; then headless Chromium opens the
HTML with every non-file request aborted: no request may be made, no page error
raised, and each inline SVG chart must render with data marks and a real size.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lmforge.report.card import write_card

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def test_report_card_is_deterministic_and_draws_offline(tmp_path):
    charts = write_card(ROOT, tmp_path / "a")
    write_card(ROOT, tmp_path / "b")
    for name in ("summary.md", "summary.html"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    md = (tmp_path / "a/summary.md").read_text()
    for heading in ("## Data", "## Tokens", "## Pretraining", "## Post-training: dpo", "## Serving", "## Lineage"):
        assert heading in md
    assert "| gate | PASSED |" in md or "| gate | FAILED" in md
    assert "rejected: " in md and "| models/pretrain/hf |" in md
    html = (tmp_path / "a/summary.html").read_text()
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert charts >= 12 and html.count("<svg ") == charts and "no data" not in html

    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser_path is None:
        pytest.skip("no chromium (make system-deps installs it)")
    from playwright.sync_api import sync_playwright

    requested, errors = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, args=ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:")
                       else (requested.append(r.request.url), r.abort()))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((tmp_path / "a/summary.html").as_uri())
            drawn = page.evaluate("""() => [...document.querySelectorAll('svg.chart')].map(s => {
                const box = s.getBoundingClientRect();
                const marks = [...s.querySelectorAll('.series, .bar')]
                  .filter(m => m.getBBox().width > 0 || m.getBBox().height > 0);
                return box.width > 100 && box.height > 50 && marks.length > 0; })""")
        finally:
            browser.close()
    assert not requested and not errors, (requested, errors)
    assert len(drawn) == charts and all(drawn), drawn
