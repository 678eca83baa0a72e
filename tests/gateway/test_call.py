"""The upstream-call helpers every gateway route shares (``lmforge.gateway.call``), in-process.

The routes' end-to-end tests go through real processes; these pin the helpers' own rules:
which upstream faults keep their status, which become the gateway's 502 and mark the
model provenance stale, and what ``relay`` logs when a stream fails or its client leaves.
"""
from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import httpx
import pytest

from lmforge.gateway.call import relay, upstream_error
from lmforge.gateway.upstream import UpstreamError, UpstreamUnavailable
from lmforge.serve.http import ApiError


def _gw():
    return SimpleNamespace(stale=False, upstream_url="http://up", writer=SimpleNamespace(lines=[]))


@pytest.mark.parametrize("status, expected", [(429, 429), (503, 503), (422, 422), (418, 502), (401, 502)])
def test_an_upstream_error_keeps_a_known_status_and_else_is_a_502(status, expected):
    gw = _gw()
    err = upstream_error(gw, UpstreamError(status, "nope", "overloaded"))
    assert (err.status, err.message, err.error_type) == (expected, "nope", "overloaded")
    assert gw.stale is False  # the upstream answered: its model has not changed


@pytest.mark.parametrize("exc", [httpx.ConnectError("refused"), asyncio.TimeoutError(),
                                 UpstreamUnavailable("down"), json.JSONDecodeError("bad", "x", 0)])
def test_a_transport_fault_is_a_502_naming_the_upstream_and_marks_provenance_stale(exc):
    gw = _gw()
    err = upstream_error(gw, exc)
    assert err.status == 502 and err.error_type == "upstream"
    assert err.message.startswith(f"upstream http://up: {type(exc).__name__}")
    assert gw.stale is True


def test_a_fault_that_is_not_upstreams_is_not_mapped():
    assert upstream_error(_gw(), ValueError("a bug")) is None


class _Call:
    """What ``relay`` reads of a ``Call``: its id, whether its line is written, and the writers."""

    def __init__(self):
        self.gw, self.id, self.ttft, self.logged, self.openai = _gw(), "rid", 0.5, False, False
        self.gw.writer.append = lambda name, rec: self.gw.writer.lines.append(rec)

    def record(self, status, **kw):
        return {"status": status, **kw}

    async def log(self, status, **kw):
        self.gw.writer.lines.append(self.record(status, **kw))
        self.logged = True

    def error_event(self, err):
        return err.body(self.openai)


async def _read(response, n: int | None = None) -> list[str]:
    out, it = [], response.body_iterator
    async for line in it:
        out.append(line)
        if n is not None and len(out) == n:
            await it.aclose()  # the client goes away
            break
    return out


def test_relay_writes_a_499_line_with_what_the_client_got_when_it_leaves():
    call, got = _Call(), {"output_tokens": 0}

    async def events():
        for i in range(5):
            got["output_tokens"] += 1
            yield f"data:{i}\n\n"

    assert asyncio.run(_read(relay(call, events(), got), n=2)) == ["data:0\n\n", "data:1\n\n"]
    assert call.gw.writer.lines == [{"status": 499, "error": "client disconnected", "ttft": 0.5,
                                     "output_tokens": 2}]


def test_relay_writes_no_499_once_the_line_is_written():
    call, got = _Call(), {}

    async def events():
        await call.log(200, completion="done")
        yield "data:final\n\n"

    asyncio.run(_read(relay(call, events(), got), n=1))
    assert [rec["status"] for rec in call.gw.writer.lines] == [200]


@pytest.mark.parametrize("fault, status", [(UpstreamError(503, "busy", "overloaded"), 503),
                                           (httpx.ReadError("reset"), 502),
                                           (ApiError(502, "upstream stream ended", "upstream"), 502)])
def test_relay_logs_a_mid_stream_fault_and_sends_it_as_an_error_event(fault, status):
    call, got = _Call(), {"output_tokens": 0}

    async def events():
        got["output_tokens"] += 1
        yield "data:0\n\n"
        raise fault

    lines = asyncio.run(_read(relay(call, events(), got)))
    assert lines[0] == "data:0\n\n" and json.loads(lines[1][5:])["error"] == rec_message(fault)
    (rec,) = call.gw.writer.lines
    assert rec["status"] == status and rec["output_tokens"] == 1 and rec["error"] == rec_message(fault)


def rec_message(fault) -> str:
    return fault.message if isinstance(fault, (ApiError, UpstreamError)) else upstream_error(_gw(), fault).message


def test_relay_lets_a_bug_raise():
    async def events():
        raise KeyError("bug")
        yield  # pragma: no cover

    with pytest.raises(KeyError):
        asyncio.run(_read(relay(_Call(), events(), {})))
