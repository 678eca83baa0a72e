"""Smoke test and load measurement of any TGI (or OpenAI-only) endpoint over plain HTTP.

Used by the deploy stage (metrics/serve.json) and bench/bench_serve.py, so the numbers
they report are measured the same way: every request is a `/generate_stream` that asks
for a fixed number of output tokens and ignores the end token (``ignore_eos``, as
``vllm bench serve --ignore-eos`` does), so a model that stops early cannot make the
server look fast. Each request is timed from send to first token (TTFT), between
tokens (inter-token latency, ITL) and to its last token (latency); output tokens/s is
all generated tokens over the wall time of the run. `smoke` checks that generate,
generate_stream and chat all answer; `check_replies` is the smoke gate: a single-token
reply fails it, and so do degenerate greedy replies to the held-out prompts. Both go through the gateway's `UpstreamClient` (httpx, one kept-alive
pool), the project's one HTTP client of a generation server, so neither needs the
archived `text-generation` client nor its huggingface_hub<1 pin.
"""
from __future__ import annotations

import asyncio
import time

import numpy as np

from lmforge.gates import verdict
from lmforge.replies import ReplyCheck, reply_failures, reply_stats
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


def _body(prompt: str, max_new_tokens: int, ignore_eos: bool = False) -> dict:
    params = {"max_new_tokens": max_new_tokens, "details": True}
    return {"inputs": prompt, "parameters": {**params, "ignore_eos": True} if ignore_eos else params}


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
        return {"generate_tokens": n, "generate_finish_reason": r["details"].get("finish_reason"),
                "stream_events": len(events),
                "chat_finish_reason": choices[0].get("finish_reason")}
    finally:
        await client.close()


def smoke(url: str, max_new_tokens: int = 8, timeout: int = 60) -> dict:
    """One generate, one generate_stream and one chat call; raise SmokeError if any misbehaves."""
    return asyncio.run(_smoke(url, max_new_tokens, timeout))


async def _replies(url: str, prompts: list[str], max_new_tokens: int, timeout: int,
                   repetition_penalty: float | None) -> list[str]:
    client = UpstreamClient(url, timeout=timeout)
    bodies = [_body(p, max_new_tokens) for p in prompts]
    if repetition_penalty is not None:
        for b in bodies:
            b["parameters"]["repetition_penalty"] = repetition_penalty
    try:
        out = await asyncio.gather(*(client.generate(b) for b in bodies))
        return [r["generated_text"].strip() for r in out]
    finally:
        await client.close()


def replies(url: str, prompts: list[str], max_new_tokens: int, timeout: int = 120,
            repetition_penalty: float | None = None) -> list[str]:
    """Greedy replies (the server's default) to ``prompts``, already rendered as chat turns."""
    return asyncio.run(_replies(url, prompts, max_new_tokens, timeout, repetition_penalty))


def check_replies(url: str, prompts: list[str], rendered: list[str], check: ReplyCheck, smoked: dict,
                  max_new_tokens: int) -> dict:
    """The smoke gate of the served model: ``smoked`` (the ``smoke`` result) must not be a
    single-token reply, and the greedy replies to the held-out prompts must not be
    degenerate; stats, failures and a few samples."""
    said = replies(url, rendered, check.max_new_tokens, repetition_penalty=check.repetition_penalty)
    stats = reply_stats(said, check.gate.short_words)
    failures = reply_failures(stats, check.gate, "deploy.smoke.check.gate")
    if smoked["generate_tokens"] == 1 < max_new_tokens:
        failures.insert(0, f"generate: a single-token reply ({smoked['generate_finish_reason']}) to "
                           f"{PROMPTS[0]!r}: the model stops at once")
    return {**stats, **verdict(failures),
            "samples": [{"prompt": p, "reply": r} for p, r in list(zip(prompts, said))[:4]]}


async def _one(client: UpstreamClient, prompt: str, max_new_tokens: int, stream: bool,
               ignore_eos: bool) -> tuple[float, float, int, list[float]]:
    t0 = time.perf_counter()
    if not stream:
        r = await client.generate(_body(prompt, max_new_tokens, ignore_eos))
        return time.perf_counter() - t0, float("nan"), r["details"]["generated_tokens"], []
    stamps = []
    async for _ in client.stream_generate(_body(prompt, max_new_tokens, ignore_eos)):
        stamps.append(time.perf_counter() - t0)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return time.perf_counter() - t0, stamps[0] if stamps else 0.0, len(stamps), gaps


async def _load(url: str, prompts: list[str], concurrency: int, max_new_tokens: int, timeout: int, stream: bool,
                ignore_eos: bool):
    client = UpstreamClient(url, timeout=timeout)
    sem = asyncio.Semaphore(concurrency)

    async def worker(p: str):
        async with sem:
            return await _one(client, p, max_new_tokens, stream, ignore_eos)

    try:
        await client.info()
        t0 = time.perf_counter()
        results = await asyncio.gather(*(worker(p) for p in prompts))
        return results, time.perf_counter() - t0
    finally:
        await client.close()


def run_load(url: str, *, requests: int, concurrency: int, max_new_tokens: int, timeout: int = 120,
             stream: bool = True, ignore_eos: bool = True) -> dict:
    """`requests` requests of `max_new_tokens` output tokens each (``ignore_eos``), at most
    `concurrency` in flight; latency, TTFT and ITL (streamed only), output tokens/s."""
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(requests)]
    results, wall = asyncio.run(_load(url, prompts, concurrency, max_new_tokens, timeout, stream, ignore_eos))
    lat = np.array([r[0] for r in results])
    ttft = np.array([r[1] for r in results])
    itl = np.array([g for r in results for g in r[3]] or [float("nan")])
    tokens = int(sum(r[2] for r in results))

    def pct(a, q):
        return round(float(np.percentile(a, q)), 6)

    out = {
        "concurrency": concurrency,
        "requests": requests,
        "max_new_tokens": max_new_tokens,
        "ignore_eos": ignore_eos,
        "generated_tokens": tokens,
        "wall_s": round(wall, 4),
        "latency_p50_s": pct(lat, 50), "latency_p95_s": pct(lat, 95),
        "ttft_p50_s": pct(ttft, 50), "ttft_p95_s": pct(ttft, 95),
        "itl_p50_s": pct(itl, 50), "itl_p95_s": pct(itl, 95),
        "tokens_per_s": round(tokens / wall, 2),   # output tokens/s: generated tokens over the wall time
        "requests_per_s": round(requests / wall, 3),
    }
    if not stream:
        for k in ("ttft_p50_s", "ttft_p95_s", "itl_p50_s", "itl_p95_s"):
            del out[k]
    return out
