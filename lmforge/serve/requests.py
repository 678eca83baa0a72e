"""Request plumbing shared by the TGI and OpenAI routes: server state, admitted requests.

Both route modules (app.py for TGI's routes and the app factory, openai.py for the
OpenAI-compatible ones) need the same pieces: the server's state, admission under
`max_concurrent_requests` with an event queue per request (`Pending`), per-request
metrics as TGI records them, body reading under the payload limit and the SSE response.
They live here, below both, so neither route module imports the other.
"""
from __future__ import annotations

import asyncio
import dataclasses
import functools
import threading
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse

from lmforge.serve.engine import Engine, Generation
from lmforge.serve.events import ErrorEvent, Finish
from lmforge.serve.http import ApiError, invalid, read_json
from lmforge.serve.metrics import ServerMetrics
from lmforge.serve.protocol import SSE_DONE, Limits, TokenTexts, sse
from lmforge.serve.sampling import SamplingParams

VERSION = "0.1.0"


@dataclasses.dataclass
class ServerState:
    engine: Engine
    tokenizer: object
    limits: Limits
    model_id: str
    metrics: ServerMetrics
    model_dtype: str = "float32"
    model_sha: str | None = None  # the model folder's content hash (server.model_sha)
    # the model's generation_config.json repetition_penalty, for requests that set none (as vLLM does)
    default_repetition_penalty: float | None = None
    inflight: int = 0
    bridge: "LoopBridge | None" = None
    started: float = dataclasses.field(default_factory=time.time)

    def encode(self, text: str, *, special: bool = True) -> list[int]:
        return self.tokenizer(text, add_special_tokens=special)["input_ids"]

    @functools.cached_property
    def texts(self) -> TokenTexts:
        """Token texts for replies (top tokens, prompt tokens)."""
        return TokenTexts(self.tokenizer)

    @functools.cached_property
    def max_token_chars(self) -> int:
        """The longest vocabulary entry, in characters: no token covers more of the input text
        (byte-level and SentencePiece vocabularies spell tokens as the text they cover)."""
        return max((len(t) for t in self.tokenizer.get_vocab()), default=1) or 1

    def bound(self, text: str, truncate: int | None = None) -> str:
        """``text`` cut to what tokenization needs, or a 422 if it certainly has too many tokens.

        A text of n characters has at least n / max_token_chars tokens (doubled for safety),
        so a 2 MB prompt is refused without tokenizing it, and with ``truncate`` only its tail
        (with a margin, so the kept tokens are those of the whole text) is tokenized.
        """
        per = 2 * self.max_token_chars
        if truncate is not None:
            return text[-(truncate + 16) * per:]
        cap = self.limits.max_input_tokens
        if len(text) > (cap + 1) * per:
            raise invalid(f"`inputs` must have less than {cap} tokens. Given: at least {len(text) // per}")
        return text

    async def encode_async(self, text: str, *, special: bool = True, truncate: int | None = None) -> list[int]:
        """``encode`` under the input limit, in a worker thread: tokenizing is CPU work and the
        event loop must keep answering /health and streaming tokens meanwhile."""
        return await run_in_threadpool(self.encode, self.bound(text, truncate), special=special)


class LoopBridge:
    """Hands engine events to the event loop, one loop wake-up per burst instead of per token.

    The engine emits one event per row per step; waking the loop for each one costs a
    self-pipe write and a loop turn, and the engine thread and the loop share the GIL.
    Events are buffered and flushed by a single scheduled callback.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop, self.buf, self.lock, self.scheduled = loop, [], threading.Lock(), False

    def push(self, queue: asyncio.Queue, ev) -> None:
        with self.lock:
            self.buf.append((queue, ev))
            if self.scheduled:
                return
            self.scheduled = True
        self.loop.call_soon_threadsafe(self._flush)

    def _flush(self) -> None:
        with self.lock:
            items, self.buf, self.scheduled = self.buf, [], False
        for queue, ev in items:
            queue.put_nowait(ev)


class Pending:
    """One admitted request: its slot under max_concurrent_requests and its event queue."""

    def __init__(self, state: ServerState, input_ids: list[int], params: SamplingParams, *, stream: bool = True):
        self.closed = True
        if state.inflight >= state.limits.max_concurrent_requests:
            raise ApiError(429, "Model is overloaded", "overloaded")
        if params.repetition_penalty is None and state.default_repetition_penalty is not None:
            params = dataclasses.replace(params, repetition_penalty=state.default_repetition_penalty)
        self.state, self.params, self.closed = state, params, False
        state.inflight += 1
        state.metrics.inflight.set(state.inflight)
        loop = asyncio.get_running_loop()
        if state.bridge is None or state.bridge.loop is not loop:
            state.bridge = LoopBridge(loop)
        bridge, queue = state.bridge, asyncio.Queue()
        self.queue = queue
        self.gen = Generation(input_ids, params, lambda ev: bridge.push(queue, ev), stream=stream)
        state.engine.submit(self.gen)

    async def events(self):
        """Yield TokenEvents up to the final one; an ErrorEvent raises ApiError."""
        while True:
            ev = await self.queue.get()
            if isinstance(ev, ErrorEvent):
                raise ApiError(ev.status, ev.message, ev.error_type)
            yield ev
            if ev.finish is not None:
                return

    async def result(self) -> Finish:
        async for ev in self.events():
            if ev.finish is not None:
                return ev.finish
        raise ApiError(500, "Incomplete generation", "incomplete_generation")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.gen.cancelled = True  # no-op for a finished request
            self.state.inflight -= 1
            self.state.metrics.inflight.set(self.state.inflight)

    __del__ = close  # a response that was never iterated still frees its slot


def observe(state: ServerState, f: Finish, t0: float, validated: float, params: SamplingParams) -> None:
    """Per-request metrics, as TGI records them on success."""
    m = state.metrics
    m.counters.inc("tgi_request_success")
    m.request_duration.observe(time.perf_counter() - t0)
    m.request_validation_duration.observe(validated - t0)
    t = f.timings
    m.request_queue_duration.observe(max(0.0, t.started_at - t.queued_at))
    m.request_inference_duration.observe(t.finished_at - t.started_at)
    m.request_mean_time_per_token.observe((t.finished_at - t.started_at) / max(1, f.generated_tokens))
    m.request_generated_tokens.observe(f.generated_tokens)
    m.request_input_length.observe(f.input_length)
    m.request_max_new_tokens.observe(params.max_new_tokens)


async def read_body(request: Request, state: ServerState, *, count: bool = True):
    if count:
        state.metrics.counters.inc("tgi_request_count")
    return await read_json(request, state.limits.payload_limit)


def event_stream(state: ServerState, pending: Pending, fmt, t0: float, validated: float, *, done: bool = False,
                 openai: bool = False):
    """Server-sent events of one request; errors mid-stream become an error event."""

    async def gen():
        try:
            async for ev in pending.events():
                yield sse(fmt(ev))
                if ev.finish is not None:
                    observe(state, ev.finish, t0, validated, pending.params)
            if done:
                yield SSE_DONE
        except ApiError as e:
            state.metrics.counters.inc("tgi_request_failure", err=e.error_type)
            yield sse(e.body(openai))
        finally:
            pending.close()

    return StreamingResponse(gen(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
