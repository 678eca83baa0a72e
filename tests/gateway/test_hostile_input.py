"""Hostile input at the gateway: every bad body is a 4xx in TGI's JSON shape, an oversized
body is refused while it streams in (memory stays flat), and start-up errors are one line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from lmforge.testing.gateway import ENV, KEY, REPO, error_of, start_gateway

HOSTILE = {
    "escaped lone surrogate": lambda s: s.replace("TEXT", "\\ud800"),
    "raw UTF-8 surrogate bytes": lambda s: s.replace("TEXT", "\udced\udca0\udc80"),  # bytes ED A0 80
    "surrogate in a key": lambda s: s[:-1] + ', "\\udbff": 1}',
    "nested 100,000 levels": lambda s: "[" * 100_000 + "]" * 100_000,
    "deep inside an object": lambda s: s[:-1] + ', "x": ' + '{"a": ' * 50_000 + "1" + "}" * 50_001,
    "NaN temperature": lambda s: s[:-1] + ', "parameters": {"temperature": NaN}}',
    "infinite top_p": lambda s: s.replace("TEXT", "hi")[:-1] + ', "top_p": Infinity}',
}
SHAPES = {
    "/generate": '{"inputs": "TEXT"}',
    "/generate_stream": '{"inputs": "TEXT"}',
    "/": '{"inputs": "TEXT", "stream": true}',
    "/v1/chat/completions": '{"messages": [{"role": "user", "content": "TEXT"}]}',
    "/feedback": '{"request_id": "TEXT", "rating": "up"}',
}
CASES = [pytest.param(path, make(shape).encode("utf-8", "surrogateescape"), id=f"{path}:{name}")
         for path, shape in SHAPES.items() for name, make in HOSTILE.items()]


@pytest.mark.parametrize("path,raw", CASES)
def test_undecodable_bodies_are_4xx_in_the_routes_shape(gateway, path, raw):
    r = httpx.post(gateway.url + path, headers=gateway.auth, content=raw, timeout=60)
    assert r.status_code == 422, r.text  # refused at the door, not a 5xx, not upstream's 424
    error_of(path, r)


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_oversized_bodies_are_refused_while_they_stream_in(gateway):
    size = 120_000_000

    def chunked():
        for _ in range(size // 1_000_000):
            yield b"x" * 1_000_000

    before = _peak_rss(gateway.proc.pid)
    for path in ("/generate", "/v1/chat/completions", "/feedback"):
        r = httpx.post(gateway.url + path, headers=gateway.auth, content=chunked(), timeout=60)
        assert r.status_code == 413, r.text
        message, kind = error_of(path, r)
        assert kind == "validation" and "1000000" in message
    r = httpx.post(gateway.url + "/generate", headers=gateway.auth, content=b"x" * size, timeout=60)
    assert r.status_code == 413 and set(r.json()) == {"error", "error_type"}
    assert _peak_rss(gateway.proc.pid) - before < 20_000_000  # far below one 120 MB body


def test_a_second_gateway_on_the_same_store_exits_with_one_line(gateway, upstream, review_data, tmp_path):
    second = start_gateway(upstream, gateway.store, review_data, tmp_path / "second.log", wait=False)
    assert second.proc.wait(60) != 0
    out = (tmp_path / "second.log").read_text()
    assert "Traceback" not in out, out
    (line,) = [ln for ln in out.splitlines() if "in use" in ln]
    assert str(gateway.store) in line


@pytest.mark.parametrize("args,needle", [
    (["--log-level", "bogus"], "--log-level"),
    (["--port", "99999"], "--port"),
    (["--store", "/dev/null/store"], "/dev/null/store"),
], ids=["log-level", "port", "store-path"])
def test_gateway_user_errors_exit_with_one_line_not_a_traceback(tmp_path, args, needle):
    cmd = [sys.executable, "-m", "lmforge.cli", "gateway", "--upstream", "http://127.0.0.1:9",
           "--store", str(tmp_path / "store"), *args]
    r = subprocess.run(cmd, cwd=REPO, env={**ENV, "LMFORGE_API_KEY": KEY}, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and needle in r.stderr, r.stderr
