"""Property-based runs against `lmforge serve`: TGI's contract through schemathesis, OpenAI's
and TGI's request shapes through hypothesis; no 5xx, only strict JSON, bounded memory."""
from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.properties import CONTRACT, OPENAI_REQUESTS, SETTINGS, check_reply, contract_strategies, rss

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not CONTRACT.exists(), reason=f"{CONTRACT} (shared/ beside the clone) is missing")
def test_tgi_contract_cases_never_5xx_and_always_json(server):
    strategies = contract_strategies()
    assert len(strategies) >= 10
    seen = []
    base = rss()

    @SETTINGS
    @given(st.one_of(strategies))
    def run(case):
        seen.append(case.operation.label)
        check_reply(case.call(base_url=server.url, timeout=60), case.path)

    run()
    print(f"\nschemathesis: {len(seen)} cases over {len(set(seen))} operations")
    assert len(set(seen)) >= 8
    assert rss() - base < 100_000_000


def test_openai_and_tgi_shapes_never_5xx_and_always_json(server):
    seen = []
    base = rss()

    @SETTINGS
    @given(OPENAI_REQUESTS)
    def run(req):
        path, body = req
        seen.append(path)
        with httpx.Client(timeout=60) as c:
            check_reply(c.post(server.url + path, json=body), path)

    run()
    print(f"\nhypothesis: {len(seen)} OpenAI/TGI-shaped requests")
    assert len(set(seen)) >= 4
    assert rss() - base < 100_000_000
