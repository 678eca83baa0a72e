"""Benchmark: local server throughput at concurrency 8 against sequential requests.

Starts `lmforge serve` in a subprocess (lmforge.release.launcher.start_server) on
models/release, or, when that does not exist yet, on a small random Llama built on the
spot (--hidden-size/--layers), then sends the same requests twice through the
`text-generation` client: one at a time, and 8 in flight, first as plain `generate`
calls (server throughput, the headline) and then as `generate_stream` (every token an
SSE event the client parses). Prints generated tokens/s of both and their ratio
(goal: >= 3x), measured in one run on one machine, and the server's CPU milliseconds per
generated token (from /proc), which a shared machine's load inflates far less than wall time.

Then the peer: llama.cpp's server (`llama-cpp-python[server]`, the `bench` extra) on the
same weights, exported to an f32 GGUF by bench/gguf_export.py, with as many compute
threads as lmforge's torch (OMP_NUM_THREADS). Both get the same prompts as greedy
OpenAI `/v1/completions` calls (max_tokens = --max-new-tokens, the same repetition penalty
on both, 1.0 unless --repetition-penalty: each server's default differs) at concurrency 1 and 8,
rounds alternating between the two servers; printed: tokens/s (completion tokens over
wall time) and p50/p95 latency of each, and the ratios lmforge / llama.cpp (goals, issue
24: >= 0.7x at concurrency 1, >= 1.2x at concurrency 8), and on how many prompts both give
the same greedy text. llama-cpp-python's server runs one request at a time (no batching),
so its concurrency-8 gain is only overlapped HTTP. `--peer-url` compares against a
llama.cpp server already running instead (e.g. `llama-server`, which batches). Without
either, lmforge's own completions figures are printed and the line says there is no ratio.

    .venv/bin/python bench/bench_serve.py [--model-id DIR] [--requests 32] [--max-new-tokens 32] [--no-peer]
        [--peer-url URL] [--no-tgi-routes]
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

import _support  # noqa: F401 - first: this checkout's lmforge on sys.path (bench/_support.py)

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from lmforge.release.launcher import free_port, start_process, start_server  # noqa: E402
from lmforge.release.loadtest import PROMPTS, run_load  # noqa: E402


def model_dir(args, tmp: str) -> Path:
    if args.model_id:
        return Path(args.model_id)
    if (Path("models/release") / "config.json").exists():
        return Path("models/release")
    from lmforge.testing.tiny_model import build_tiny_model

    print(f"(models/release not found: random Llama, hidden {args.hidden_size}, {args.layers} layers)")
    return build_tiny_model(Path(tmp) / "model", hidden_size=args.hidden_size, layers=args.layers)


def bench_throughput(url: str, pid: int, requests: int, max_new_tokens: int, concurrency: int = 8,
                     stream: bool = False) -> dict:
    """Sequential vs `concurrency` in flight, same requests; returns both runs and the ratio."""
    run_load(url, requests=2, concurrency=1, max_new_tokens=4, stream=stream)  # warm-up
    runs = {}
    for name, c in (("sequential", 1), ("concurrent", concurrency)):
        cpu0 = cpu_seconds(pid)
        runs[name] = run_load(url, requests=requests, concurrency=c, max_new_tokens=max_new_tokens, stream=stream)
        runs[name]["cpu_ms_per_token"] = 1000 * (cpu_seconds(pid) - cpu0) / max(1, runs[name]["generated_tokens"])
    return {**runs, "ratio": runs["concurrent"]["tokens_per_s"] / runs["sequential"]["tokens_per_s"]}


def report(name: str, r: dict, concurrency: int) -> None:
    s, c = r["sequential"], r["concurrent"]
    for label, m in (("sequential", s), (f"concurrency {concurrency}", c)):
        ttft = f"  ttft p50 {m['ttft_p50_s']:.3f}s" if "ttft_p50_s" in m else ""
        cpu = f"  server CPU {m['cpu_ms_per_token']:.2f} ms/token" if m["cpu_ms_per_token"] else ""
        print(f"  {name:<9} {label:<15}: {m['tokens_per_s']:8.1f} tok/s  p50 {m['latency_p50_s']:.3f}s{ttft}{cpu}")
    print(f"  {name:<9} throughput ratio (concurrency {concurrency} / sequential): {r['ratio']:.2f}x  (goal >= 3x)")


async def _completions(url: str, model: str, prompts: list[str], max_tokens: int, concurrency: int,
                       extra: dict) -> dict:
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        async def one(prompt: str) -> tuple[float, int]:
            async with sem:
                t0 = time.perf_counter()
                r = await client.post("/v1/completions", json={"model": model, "prompt": prompt,
                                                               "max_tokens": max_tokens, "temperature": 0, **extra})
                r.raise_for_status()
                return time.perf_counter() - t0, r.json()["usage"]["completion_tokens"]
        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(p) for p in prompts))
        wall = time.perf_counter() - t0
    lat = np.array([r[0] for r in results])
    tokens = sum(r[1] for r in results)
    return {"tokens_per_s": tokens / wall, "tokens": tokens, "p50": float(np.percentile(lat, 50)),
            "p95": float(np.percentile(lat, 95))}


def cpu_seconds(pid: int | None) -> float:
    """CPU seconds (user + system) a process has used so far; 0 when unknown (not Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def completions_load(url: str, model: str, requests: int, max_tokens: int, concurrency: int,
                     pid: int | None = None, extra: dict | None = None) -> dict:
    """Wall-clock figures of one load, and the server's CPU time per token, which a shared
    machine's load inflates much less than wall time."""
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(requests)]
    cpu0 = cpu_seconds(pid)
    out = asyncio.run(_completions(url, model, prompts, max_tokens, concurrency, extra or {}))
    out["cpu_ms_per_token"] = 1000 * (cpu_seconds(pid) - cpu0) / max(1, out["tokens"])
    return out


def start_llama_cpp(model: Path, tmp: str, n_ctx: int):
    """llama-cpp-python's OpenAI server on an f32 GGUF export of `model`, healthy on return."""
    from gguf_export import export

    gguf_file = export(model, Path(tmp) / "model-f32.gguf")
    port = free_port()
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_file), "--host", "127.0.0.1",
            "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", os.environ["OMP_NUM_THREADS"],
            "--n_threads_batch", os.environ["OMP_NUM_THREADS"], "--model_alias", "peer"]
    return start_process(argv, port=port, health_path="/v1/models", timeout=300)


def compare(servers: dict[str, tuple[str, str, int | None, dict]], args) -> None:
    """Greedy /v1/completions at concurrency 1 and `args.concurrency` on each server, rounds
    alternating between them; medians per server and, with a peer, lmforge / peer ratios."""
    print(f"completions: greedy /v1/completions, {args.requests} requests, max_tokens {args.max_new_tokens}, "
          f"{os.environ['OMP_NUM_THREADS']} compute thread(s), {args.rounds} rounds")
    for url, name, _, extra in servers.values():  # warm-up
        completions_load(url, name, 2, 4, 1, extra=extra)
    med_by_c = {}
    for c in (1, args.concurrency):
        runs = {k: [] for k in servers}
        for _ in range(args.rounds):
            for k, (url, name, pid, extra) in servers.items():
                runs[k].append(completions_load(url, name, args.requests, args.max_new_tokens, c, pid, extra))
        med = {k: {m: float(np.median([r[m] for r in v])) for m in v[0]} for k, v in runs.items()}
        med_by_c[c] = med
        for k, m in med.items():
            print(f"  {k:<9} concurrency {c}: {m['tokens_per_s']:8.1f} tok/s  p50 {m['p50']:.3f}s  "
                  f"p95 {m['p95']:.3f}s  ({m['tokens']:.0f} tokens)" +
                  (f"  server CPU {m['cpu_ms_per_token']:.2f} ms/token" if m["cpu_ms_per_token"] else ""))
        if len(med) == 2:
            a, b = med["lmforge"], med["peer"]
            print(f"  lmforge / peer at concurrency {c}: throughput {a['tokens_per_s'] / b['tokens_per_s']:.2f}x "
                  f"(goal >= {0.7 if c == 1 else 1.2}x), p50 latency {a['p50'] / b['p50']:.2f}x, "
                  f"p95 latency {a['p95'] / b['p95']:.2f}x")
            if abs(a["tokens"] - b["tokens"]) > 0.05 * b["tokens"]:
                print(f"  (output lengths differ: {a['tokens']:.0f} vs {b['tokens']:.0f} tokens, so the throughput "
                      "ratio compares unequal work: a server that stops early pays its per-request costs over fewer "
                      "tokens)")
    lm = {c: med["lmforge"]["tokens_per_s"] for c, med in med_by_c.items()}
    print(f"  lmforge concurrency {args.concurrency} / concurrency 1 on this route: "
          f"{lm[args.concurrency] / lm[1]:.2f}x")


def peer(lmforge_url: str, lmforge_pid: int, model: Path, tmp: str, args) -> None:
    """lmforge against llama.cpp: a running server (--peer-url, e.g. llama.cpp's `llama-server`),
    or llama-cpp-python's server started here; lmforge alone when neither is there."""
    # the same sampling on both: each server's own name for the repetition penalty (lmforge would
    # otherwise apply the release's default, llama.cpp its own 1.1 over the last 64 tokens)
    servers = {"lmforge": (lmforge_url, "lmforge", lmforge_pid, {"repetition_penalty": args.repetition_penalty})}
    peer_extra = {"repeat_penalty": args.repetition_penalty}
    if args.peer_url:
        servers["peer"] = (args.peer_url.rstrip("/"), args.peer_model, args.peer_pid, peer_extra)
        return _same_text_then_compare(servers, args)
    if not all(importlib.util.find_spec(m) for m in ("llama_cpp", "gguf")):
        print("peer: llama.cpp not installed (pip install -e '.[bench]' for llama-cpp-python[server] and gguf, "
              "or pass --peer-url of a running llama-server): lmforge alone, no ratio")
        return compare(servers, args)
    with start_llama_cpp(model, tmp, n_ctx=args.n_ctx) as llama:
        servers["peer"] = (llama.url, "peer", llama.proc.pid, peer_extra)
        print(f"peer: llama.cpp (llama-cpp-python server, f32 GGUF, {os.environ['OMP_NUM_THREADS']} thread(s))")
        _same_text_then_compare(servers, args)


def _same_text_then_compare(servers: dict[str, tuple[str, str, int | None, dict]], args) -> None:
    same = sum(len({httpx.post(url + "/v1/completions", timeout=120, json={
        "model": name, "prompt": prompt, "max_tokens": args.max_new_tokens, "temperature": 0, **extra}).json()[
        "choices"][0]["text"] for url, name, _, extra in servers.values()}) == 1 for prompt in PROMPTS)
    print(f"peer: same greedy text from both on {same}/{len(PROMPTS)} prompts (the GGUF export's check; near-ties "
          "may flip between kernels)")
    compare(servers, args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-id")
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--hidden-size", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2, help="peer comparison rounds per server (medians)")
    ap.add_argument("--n-ctx", type=int, default=256, help="llama.cpp context (the release's max positions)")
    ap.add_argument("--no-peer", action="store_true", help="skip the llama.cpp comparison")
    ap.add_argument("--peer-url", help="a running llama.cpp server (OpenAI routes) on the same weights")
    ap.add_argument("--repetition-penalty", type=float, default=1.0,
                    help="sent to both servers in the comparison (1.0: plain greedy, the same work on both)")
    ap.add_argument("--peer-model", default="peer", help="the model name the peer server answers to")
    ap.add_argument("--peer-pid", type=int, help="the --peer-url server's process id (for its CPU time)")
    ap.add_argument("--no-tgi-routes", action="store_true", help="only the peer comparison")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = model_dir(args, tmp)
        with start_server(model, extra_args=["--max-batch-size", str(args.concurrency)]) as srv:
            print(f"model: {model}  requests: {args.requests}  max_new_tokens: {args.max_new_tokens}")
            for name, stream in (() if args.no_tgi_routes else (("generate", False), ("stream", True))):
                report(name, bench_throughput(srv.url, srv.proc.pid, args.requests, args.max_new_tokens,
                                              args.concurrency, stream), args.concurrency)
            if not args.no_peer:
                peer(srv.url, srv.proc.pid, model, tmp, args)


if __name__ == "__main__":
    main()
