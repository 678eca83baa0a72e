"""Gateway overhead: p50 latency through `lmforge gateway` minus p50 calling the server directly.

Goal: the gateway adds at most 5 ms at p50. Both paths are measured in
the same run, interleaved request by request (direct, gateway, direct, ...), so
machine load affects both alike. The upstream is the real `lmforge serve` on a
model folder (``--model-id``; default: a tiny model built on the fly), asked for
one new token so the model's own time stays small next to what is measured. The
gateway does everything it does in production: auth, safety check, upstream call
through ``lmforge.gateway.upstream`` (httpx), a request-log line fsynced before the reply.

    .venv/bin/python bench/bench_gateway.py [--requests 200] [--model-id DIR]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

import _support  # noqa: F401 - first: this checkout's lmforge on sys.path (bench/_support.py)

from lmforge.testing.gateway import KEY, free_port, start, start_gateway, stop, wait_http  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def fsync_p50_ms(folder: Path, n: int = 200) -> float:
    """p50 of append+fsync of one log-sized line on ``folder``'s filesystem, now."""
    ts = []
    with open(folder / ".fsync_probe", "ab", buffering=0) as f:
        for _ in range(n):
            f.write(b"x" * 600 + b"\n")
            t = time.perf_counter()
            os.fsync(f.fileno())
            ts.append((time.perf_counter() - t) * 1e3)
    (folder / ".fsync_probe").unlink()
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200, help="requests per path")
    ap.add_argument("--model-id", help="model folder (default: a tiny model built now)")
    ap.add_argument("--stream", action="store_true", help="measure /generate_stream instead")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tmp = Path(tempfile.mkdtemp(prefix="bench_gateway."))
    model = args.model_id
    if model is None:
        from lmforge.testing.tiny_model import build_tiny_model
        model = str(build_tiny_model(tmp / "model"))
    port = free_port()
    serve = start(["-m", "lmforge.cli", "serve", "--model-id", model, "--port", str(port)], tmp / "serve.log")
    upstream = f"http://127.0.0.1:{port}"
    gw = None
    try:
        wait_http(f"{upstream}/health", serve, timeout=300)
        (tmp / "data").mkdir()
        gw = start_gateway(upstream, tmp / "store", tmp / "data", tmp / "gateway.log")
        path = "/generate_stream" if args.stream else "/generate"
        body = {"inputs": "What is Debian?", "parameters": {"max_new_tokens": 1}}
        direct = httpx.Client(base_url=upstream, timeout=60)
        via = httpx.Client(base_url=gw.url, timeout=60, headers={"Authorization": f"Bearer {KEY}"})

        def timed(client: httpx.Client) -> float:
            t = time.perf_counter()
            r = client.post(path, json=body)
            r.read()
            assert r.status_code == 200, r.text
            return (time.perf_counter() - t) * 1e3

        for _ in range(20):  # warm up both paths (connections, caches)
            timed(direct), timed(via)
        d_ms, g_ms = [], []
        for _ in range(args.requests):
            d_ms.append(timed(direct))
            g_ms.append(timed(via))
        logged = sum(1 for _ in open(tmp / "store" / "requests.jsonl"))
        fsync_ms = fsync_p50_ms(tmp / "store")
    finally:
        if gw is not None:
            stop(gw.proc)
        stop(serve)
    p50_d, p50_g = statistics.median(d_ms), statistics.median(g_ms)
    added = p50_g - p50_d
    paired = statistics.median(g - d for g, d in zip(g_ms, d_ms))
    print(f"bench_gateway: {args.requests} interleaved requests per path, POST {path}, max_new_tokens=1, "
          f"model {'tiny (built now)' if args.model_id is None else model}")
    print(f"  direct to lmforge serve  p50 {p50_d:7.2f} ms  p95 {pct(d_ms, 0.95):7.2f} ms")
    print(f"  through lmforge gateway  p50 {p50_g:7.2f} ms  p95 {pct(g_ms, 0.95):7.2f} ms  "
          f"({logged} log lines fsynced)")
    print(f"  gateway/direct p50 ratio {p50_g / p50_d:.2f}x; added p50 {added:+.2f} ms "
          f"(median paired difference {paired:+.2f} ms); goal <= 5 ms: "
          f"{'met' if added <= 5 else 'NOT met'}")
    print(f"  context: one fsync of a log line on this disk now p50 {fsync_ms:.2f} ms (the durability "
          f"floor of the added latency); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
