"""No acknowledged line is lost: many concurrent clients, and a SIGKILL of the gateway under load."""
from __future__ import annotations

import asyncio
import re
import signal
import time

import httpx

from lmforge.feedback.store import FEEDBACK, REQUESTS, read_jsonl, scan_jsonl

from lmforge.testing.gateway import start_gateway, stop


def _generate(gw, prompt: str) -> str:
    r = httpx.post(gw.url + "/generate", headers=gw.auth, timeout=60,
                   json={"inputs": prompt, "parameters": {"max_new_tokens": 2}})
    assert r.status_code == 200, r.text
    return r.headers["x-request-id"]


async def _load(gw, rid: str, clients: int, per_client: int | None, acked: dict, stop_at: float | None):
    """``clients`` concurrent writers posting feedback (and some generations); record acks."""
    async def worker(k: int, http: httpx.AsyncClient):
        i = 0
        while per_client is None or i < per_client:
            if stop_at is not None and time.monotonic() > stop_at:
                return
            i += 1
            try:
                if k == 0 and i % 5 == 0:
                    r = await http.post("/generate", json={"inputs": f"load {i}",
                                                           "parameters": {"max_new_tokens": 1}})
                    if r.status_code == 200:
                        acked["requests"].add(r.headers["x-request-id"])
                    continue
                r = await http.post("/feedback", json={"request_id": rid, "rating": "up" if i % 2 else "down",
                                                       "comment": f"client {k} #{i}"})
                if r.status_code == 200:
                    acked["feedback"].add(r.json()["id"])
            except httpx.HTTPError:
                if per_client is not None:
                    raise
                await asyncio.sleep(0.01)  # the gateway is gone: keep trying until stop_at

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=gw.url, headers=gw.auth, timeout=30, limits=limits) as http:
        await asyncio.gather(*(worker(k, http) for k in range(clients)))


def test_many_concurrent_clients_lose_nothing(gateway):
    rid = _generate(gateway, "concurrency")
    acked = {"feedback": set(), "requests": set()}
    asyncio.run(_load(gateway, rid, clients=16, per_client=15, acked=acked, stop_at=None))
    on_disk = {f["id"] for f in read_jsonl(gateway.store / FEEDBACK)}
    assert len(acked["feedback"]) >= 16 * 12 and acked["feedback"] <= on_disk
    assert acked["requests"] <= {r["id"] for r in read_jsonl(gateway.store / REQUESTS)}
    metrics = httpx.get(gateway.url + "/metrics").text
    commits = float(re.search(r"^lmforge_gateway_store_commits_total (\S+)$", metrics, re.M)[1])
    lines = float(re.search(r"^lmforge_gateway_store_lines_total (\S+)$", metrics, re.M)[1])
    assert commits < lines  # group commit: concurrent lines shared fsyncs


def test_sigkill_under_load_loses_no_acknowledged_line(upstream, review_data, tmp_path):
    store = tmp_path / "store"
    gw = start_gateway(upstream, store, review_data, tmp_path / "gw1.log")
    try:
        rid = _generate(gw, "before the crash")
        acked = {"feedback": set(), "requests": {rid}}

        async def run():
            load = asyncio.create_task(_load(gw, rid, clients=12, per_client=None, acked=acked,
                                             stop_at=time.monotonic() + 3.0))
            await asyncio.sleep(1.5)
            gw.proc.send_signal(signal.SIGKILL)  # mid-load, no chance to flush anything
            await load
        asyncio.run(run())
        assert gw.proc.wait(10) == -signal.SIGKILL
    finally:
        stop(gw.proc)
    assert len(acked["feedback"]) > 20  # the kill really happened under load
    feedback = scan_jsonl(store / FEEDBACK)  # a torn last line, if any, is skipped
    assert acked["feedback"] <= {f["id"] for f in feedback.records}
    assert acked["requests"] <= {r["id"] for r in read_jsonl(store / REQUESTS)}

    gw2 = start_gateway(upstream, store, review_data, tmp_path / "gw2.log")  # restarts on that store
    try:
        r = httpx.post(gw2.url + "/feedback", headers=gw2.auth, json={"request_id": rid, "rating": "up"})
        assert r.status_code == 200  # the request log was reloaded: the old id is known
        after = scan_jsonl(store / FEEDBACK)
        assert not after.torn_tail and r.json()["id"] in {f["id"] for f in after.records}
        assert acked["feedback"] <= {f["id"] for f in after.records}
    finally:
        stop(gw2.proc)
