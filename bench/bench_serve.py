"""Benchmark: local server throughput at concurrency 8 against sequential requests.

Starts `lmforge serve` in a subprocess (lmforge.serve.launcher.start_server) on
models/release, or, when that does not exist yet, on a small random Llama built on the
spot (--hidden-size/--layers), then sends the same requests twice through the
`text-generation` client: one at a time, and 8 in flight, first as plain `generate`
calls (server throughput, the headline) and then as `generate_stream` (every token an
SSE event the client parses). Prints generated tokens/s of both and their ratio
(goal: >= 3x), measured in one run on one machine.

    .venv/bin/python bench/bench_serve.py [--model-id DIR] [--requests 32] [--max-new-tokens 32]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support.tiny_model
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from lmforge.serve.launcher import start_server  # noqa: E402
from lmforge.release.loadtest import run_load  # noqa: E402


def model_dir(args, tmp: str) -> Path:
    if args.model_id:
        return Path(args.model_id)
    if (Path("models/release") / "config.json").exists():
        return Path("models/release")
    from support.tiny_model import build_tiny_model

    print(f"(models/release not found: random Llama, hidden {args.hidden_size}, {args.layers} layers)")
    return build_tiny_model(Path(tmp) / "model", hidden_size=args.hidden_size, layers=args.layers)


def bench_throughput(url: str, requests: int, max_new_tokens: int, concurrency: int = 8, stream: bool = False) -> dict:
    """Sequential vs `concurrency` in flight, same requests; returns both runs and the ratio."""
    run_load(url, requests=2, concurrency=1, max_new_tokens=4, stream=stream)  # warm-up
    seq = run_load(url, requests=requests, concurrency=1, max_new_tokens=max_new_tokens, stream=stream)
    par = run_load(url, requests=requests, concurrency=concurrency, max_new_tokens=max_new_tokens, stream=stream)
    return {"sequential": seq, "concurrent": par, "ratio": par["tokens_per_s"] / seq["tokens_per_s"]}


def report(name: str, r: dict, concurrency: int) -> None:
    s, c = r["sequential"], r["concurrent"]
    for label, m in (("sequential", s), (f"concurrency {concurrency}", c)):
        ttft = f"  ttft p50 {m['ttft_p50_s']:.3f}s" if "ttft_p50_s" in m else ""
        print(f"  {name:<9} {label:<15}: {m['tokens_per_s']:8.1f} tok/s  p50 {m['latency_p50_s']:.3f}s{ttft}")
    print(f"  {name:<9} throughput ratio (concurrency {concurrency} / sequential): {r['ratio']:.2f}x  (goal >= 3x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-id")
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--hidden-size", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = model_dir(args, tmp)
        with start_server(model, extra_args=["--max-batch-size", str(args.concurrency)]) as srv:
            print(f"model: {model}  requests: {args.requests}  max_new_tokens: {args.max_new_tokens}")
            for name, stream in (("generate", False), ("stream", True)):
                report(name, bench_throughput(srv.url, args.requests, args.max_new_tokens, args.concurrency,
                                              stream), args.concurrency)


if __name__ == "__main__":
    main()
