"""Smoke test and load measurement of any TGI (or OpenAI-only) endpoint over plain HTTP.

Used by the deploy stage (metrics/serve.json) and bench/bench_serve.py, so the numbers
they report are measured the same way: every request is a `/generate_stream`, timed
from send to first token (TTFT) and to last token (latency); tokens/s is all generated
tokens over the wall time of the run. `smoke` checks that generate, generate_stream and
chat all answer. Both go through the gateway's `UpstreamClient` (httpx, one kept-alive
pool), the project's one HTTP client of a generation server, so neither needs the
archived `text-generation` client nor its huggingface_hub<1 pin.
"""
from __future__ import annotations

import asyncio
import time

import numpy as np

from lmforge.gateway.upstream import UpstreamClient
from lmforge.stage import StageFailure

PROMPTS = [
    "What is Debian?",
    "Explain what a package manager does.",
    "Write one sentence about Python.",
    "How do I list files in a directory?",
    "What is a language model?",
    "Name a free operating system.",
    "What does the tokenizer do?",
    "Say hello in French.",
]


class SmokeError(StageFailure):
    """The endpoint answered wrongly; the message names the call."""


def _body(prompt: str, max_new_tokens: int) -> dict:
    return {"inputs": prompt, "parameters": {"max_new_tokens": max_new_tokens, "details": True}}


async def _smoke(url: str, max_new_tokens: int, timeout: int) -> dict:
    client = UpstreamClient(url, timeout=timeout)
    try:
        await client.info()
        r = await client.generate(_body(PROMPTS[0], max_new_tokens))
        n = r["details"]["generated_tokens"]
        if not 1 <= n <= max_new_tokens:
            raise SmokeError(f"{url} generate: {n} tokens for max_new_tokens={max_new_tokens}")
        events = [e async for e in client.stream_generate(_body(PROMPTS[1], max_new_tokens))]
        if not events or events[-1].get("details") is None or events[-1].get("generated_text") is None:
            raise SmokeError(f"{url} generate_stream: no final event with details")
        chat = await client.chat({"model": "tgi", "messages": [{"role": "user", "content": PROMPTS[2]}],
                                  "max_tokens": max_new_tokens})
        choices = chat.get("choices") or [{}]
        if (choices[0].get("message") or {}).get("role") != "assistant":
            raise SmokeError(f"{url} chat: no assistant message")
        return {"generate_tokens": n, "stream_events": len(events),
                "chat_finish_reason": choices[0].get("finish_reason")}
    finally:
        await client.close()


def smoke(url: str, max_new_tokens: int = 8, timeout: int = 60) -> dict:
    """One generate, one generate_stream and one chat call; raise SmokeError if any misbehaves."""
    return asyncio.run(_smoke(url, max_new_tokens, timeout))


async def _one(client: UpstreamClient, prompt: str, max_new_tokens: int, stream: bool) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    if not stream:
        r = await client.generate(_body(prompt, max_new_tokens))
        return time.perf_counter() - t0, float("nan"), r["details"]["generated_tokens"]
    ttft, n = None, 0
    async for _ in client.stream_generate(_body(prompt, max_new_tokens)):
        if ttft is None:
            ttft = time.perf_counter() - t0
        n += 1
    return time.perf_counter() - t0, ttft or 0.0, n


async def _load(url: str, prompts: list[str], concurrency: int, max_new_tokens: int, timeout: int, stream: bool):
    client = UpstreamClient(url, timeout=timeout)
    sem = asyncio.Semaphore(concurrency)

    async def worker(p: str):
        async with sem:
            return await _one(client, p, max_new_tokens, stream)

    try:
        await client.info()
        t0 = time.perf_counter()
        results = await asyncio.gather(*(worker(p) for p in prompts))
        return results, time.perf_counter() - t0
    finally:
        await client.close()


def run_load(url: str, *, requests: int, concurrency: int, max_new_tokens: int, timeout: int = 120,
             stream: bool = True) -> dict:
    """`requests` requests, at most `concurrency` in flight; latency, TTFT (streamed only) and throughput."""
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(requests)]
    results, wall = asyncio.run(_load(url, prompts, concurrency, max_new_tokens, timeout, stream))
    lat = np.array([r[0] for r in results])
    ttft = np.array([r[1] for r in results])
    tokens = int(sum(r[2] for r in results))
    out = {
        "concurrency": concurrency,
        "requests": requests,
        "generated_tokens": tokens,
        "wall_s": round(wall, 4),
        "latency_p50_s": round(float(np.percentile(lat, 50)), 4),
        "latency_p95_s": round(float(np.percentile(lat, 95)), 4),
        "ttft_p50_s": round(float(np.percentile(ttft, 50)), 4),
        "ttft_p95_s": round(float(np.percentile(ttft, 95)), 4),
        "tokens_per_s": round(tokens / wall, 2),
        "requests_per_s": round(requests / wall, 3),
    }
    if not stream:
        del out["ttft_p50_s"], out["ttft_p95_s"]
    return out
