"""The gateway's web page in a real headless Chromium: streaming chat, thumbs up, data review.

Debian's chromium driven by playwright (never a downloaded browser); the page talks
to a real gateway in front of the real `lmforge serve`.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.feedback.store import FEEDBACK, REQUESTS, REVIEW_LABELS, read_jsonl

from lmforge.testing.gateway import KEY

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"{CHROMIUM} missing: install Debian's chromium (make system-deps)")


@pytest.fixture(scope="module")
def page(gateway):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.set_default_timeout(60_000)
        page.goto(gateway.url + "/")
        page.fill("#api-key", KEY)
        page.dispatch_event("#api-key", "change")
        yield page
        browser.close()


def test_chat_streams_a_reply_and_thumbs_up_writes_feedback(page, gateway):
    from playwright.sync_api import expect

    # Count DOM updates of the reply while it arrives: a stream shows up piece by piece.
    page.evaluate("""() => { window.__updates = 0;
        new MutationObserver(ms => { window.__updates += ms.length; })
          .observe(document.querySelector('#messages'),
                   {subtree: true, childList: true, characterData: true}); }""")
    page.fill("#max-tokens", "12")
    page.fill("#prompt", "What is Debian?")
    page.click("#send")
    msg = page.locator(".msg.assistant.done")
    msg.wait_for()
    rid = msg.get_attribute("data-request-id")
    shown = msg.locator(".text").text_content()
    rec = next(r for r in read_jsonl(gateway.store / REQUESTS) if r["id"] == rid)
    assert rec["route"] == "/v1/chat/completions" and rec["stream"] is True
    assert rec["prompt"] == "What is Debian?" and rec["completion"] == shown and shown
    assert page.evaluate("window.__updates") >= 4  # user message + several streamed pieces

    msg.locator(".thumb-up").click()
    expect(msg.locator(".feedback-status")).to_have_text("saved up")
    fb = [f for f in read_jsonl(gateway.store / FEEDBACK) if f.get("request_id") == rid]
    assert [f["rating"] for f in fb] == ["up"]


def test_review_view_browses_reasons_and_labels_a_document(page, gateway):
    from playwright.sync_api import expect

    page.click("#tab-review")
    docs = page.locator("#docs .doc")
    expect(docs).to_have_count(3)
    doc = page.locator('.doc[data-id="r2"]')
    expect(doc.locator(".reason")).to_have_text("filtered by: language")
    doc.locator("button.drop").click()
    expect(doc.locator(".label")).to_have_text("drop")
    labels = [lab for lab in read_jsonl(gateway.store / REVIEW_LABELS) if lab["doc_id"] == "r2"]
    assert [(lab["label"], lab["set"]) for lab in labels] == [("drop", "rejected")]

    page.select_option("#review-reason", "minhash_dedup")
    expect(docs).to_have_count(1)
    expect(page.locator('.doc[data-id="r3"] .dup')).to_have_text("duplicate of c1")
    page.select_option("#review-set", "curated")
    expect(docs).to_have_count(2)
    page.locator('.doc[data-id="c1"] button.keep').click()
    expect(page.locator('.doc[data-id="c1"] .label')).to_have_text("keep")


def test_status_view_shows_the_gateways_own_metrics(page, gateway):
    """After the chat test's request, the Status tab counts it from /metrics."""
    import httpx
    from playwright.sync_api import expect

    page.click("#tab-status")
    row = page.locator('#status-table tr[data-key="requests"] td')
    expect(row).not_to_have_text("0")
    n = int(row.text_content())
    metrics = httpx.get(gateway.url + "/metrics").text
    counted = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                  if line.startswith("lmforge_gateway_requests_total{"))
    assert n >= 1 and n <= counted  # the page read the same counter (later requests only add)
    expect(page.locator('#status-table tr[data-key="health"] td')).to_have_text("ok")
    expect(page.locator('#status-table tr[data-key="upstream"] td')).to_have_text("ready")  # from /ready
    info = httpx.get(gateway.url + "/info").json()
    expect(page.locator('#status-table tr[data-key="model"] td')).to_contain_text(info["model_version"])
    assert page.locator('#status-table tr[data-key="error"]').count() == 0
