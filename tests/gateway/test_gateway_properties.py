"""Property-based runs through the gateway (in front of the real `lmforge serve`): TGI's contract
through schemathesis, OpenAI's and TGI's request shapes through hypothesis; no 5xx, only
strict JSON, and the gateway's memory within 100 MB of where it started."""
from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.properties import CONTRACT, OPENAI_REQUESTS, SETTINGS, check_reply, contract_strategies, rss

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not CONTRACT.exists(), reason=f"{CONTRACT} (shared/ beside the clone) is missing")
def test_tgi_contract_cases_through_the_gateway(gateway):
    strategies = contract_strategies()
    seen = []
    base = rss(gateway.proc.pid)

    @SETTINGS
    @given(st.one_of(strategies))
    def run(case):
        seen.append(case.operation.label)
        check_reply(case.call(base_url=gateway.url, headers=gateway.auth, timeout=60), case.path)

    run()
    print(f"\nschemathesis through the gateway: {len(seen)} cases over {len(set(seen))} operations")
    assert rss(gateway.proc.pid) - base < 100_000_000


def test_openai_and_tgi_shapes_through_the_gateway(gateway):
    seen = []
    base = rss(gateway.proc.pid)

    @SETTINGS
    @given(OPENAI_REQUESTS)
    def run(req):
        path, body = req
        seen.append(path)
        with httpx.Client(timeout=60, headers=gateway.auth) as c:
            check_reply(c.post(gateway.url + path, json=body), path)

    run()
    print(f"\nhypothesis through the gateway: {len(seen)} OpenAI/TGI-shaped requests")
    assert rss(gateway.proc.pid) - base < 100_000_000
