"""The local TGI-compatible HTTP server: TGI's native routes and the app factory.

`create_app(state)` builds a Starlette app speaking TGI's HTTP contract
(../shared/contracts/tgi-openapi.json): `POST /` (compat: JSON array or SSE),
`/generate`, `/generate_stream`, `/tokenize`, `GET /info`, `/health`, `/metrics`, and
the OpenAI-style routes from openai.py. Admission is bounded like TGI's router: at most
`max_concurrent_requests` requests are in flight (queued or generating); one more gets
429 `overloaded` at once instead of waiting. Every error, including malformed JSON and
unknown routes, is TGI's `{"error", "error_type"}` body with a 4xx status (http.py);
a body over `payload_limit` bytes is refused with 413 while it streams in.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from lmforge.serve.engine import Engine, ErrorEvent, Finish, Generation, TokenEvent
from lmforge.serve.http import ApiError, exception_handlers, read_json
from lmforge.serve.metrics import ServerMetrics
from lmforge.serve.protocol import (Limits, fit_tokens, generate_json, invalid, parse_generate, require_object, sse,
                                    stream_json)
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
    inflight: int = 0
    bridge: "LoopBridge | None" = None
    started: float = dataclasses.field(default_factory=time.time)

    def encode(self, text: str, *, special: bool = True) -> list[int]:
        return self.tokenizer(text, add_special_tokens=special)["input_ids"]


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
    m.request_queue_duration.observe(max(0.0, f.started_at - f.queued_at))
    m.request_inference_duration.observe(f.finished_at - f.started_at)
    m.request_mean_time_per_token.observe((f.finished_at - f.started_at) / max(1, f.generated_tokens))
    m.request_generated_tokens.observe(f.generated_tokens)
    m.request_input_length.observe(f.input_length)
    m.request_max_new_tokens.observe(params.max_new_tokens)


async def read_body(request: Request, state: ServerState, *, count: bool = True):
    if count:
        state.metrics.counters.inc("tgi_request_count")
    return await read_json(request, state.limits.payload_limit)


def event_stream(state: ServerState, pending: Pending, fmt, t0: float, validated: float, *, done: bool = False):
    """Server-sent events of one request; errors mid-stream become an error event."""

    async def gen():
        try:
            async for ev in pending.events():
                yield sse(fmt(ev))
                if ev.finish is not None:
                    observe(state, ev.finish, t0, validated, pending.params)
            if done:
                yield b"data: [DONE]\n\n"
        except ApiError as e:
            state.metrics.counters.inc("tgi_request_failure", err=e.error_type)
            yield sse(e.body())
        finally:
            pending.close()

    return StreamingResponse(gen(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# ---- TGI routes ---------------------------------------------------------------------
async def _generate(request: Request, stream: bool | None):
    state: ServerState = request.app.state.lmforge
    t0 = time.perf_counter()
    body = await read_body(request, state)
    opts, params, truncate = parse_generate(body, state.limits, stream=stream)
    ids = fit_tokens(state.encode(opts.inputs), params, truncate, state.limits)
    validated = time.perf_counter()
    pending = Pending(state, ids, params, stream=opts.stream)
    if opts.stream:
        return event_stream(state, pending, lambda ev: stream_json(ev, opts), t0, validated)
    try:
        f = await pending.result()
    finally:
        pending.close()
    observe(state, f, t0, validated, params)
    out = generate_json(f, opts, params)
    return JSONResponse([out] if stream is None else out)


async def compat_generate(request: Request):
    return await _generate(request, None)


async def generate(request: Request):
    return await _generate(request, False)


async def generate_stream(request: Request):
    return await _generate(request, True)


async def tokenize(request: Request):
    state: ServerState = request.app.state.lmforge
    body = require_object(await read_body(request, state, count=False))
    inputs = body.get("inputs")
    if not isinstance(inputs, str):
        raise invalid("`inputs` must be a string")
    enc = state.tokenizer(inputs, add_special_tokens=True, return_offsets_mapping=True)
    return JSONResponse([{"id": i, "text": inputs[a:b], "start": a, "stop": b}
                         for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"])])


async def info(request: Request):
    state: ServerState = request.app.state.lmforge
    lim = state.limits
    return JSONResponse({
        "model_id": state.model_id, "model_sha": None, "model_dtype": state.model_dtype,
        "model_device_type": "cpu", "model_pipeline_tag": "text-generation",
        "max_concurrent_requests": lim.max_concurrent_requests, "max_best_of": lim.max_best_of,
        "max_stop_sequences": lim.max_stop_sequences, "max_input_tokens": lim.max_input_tokens,
        "max_total_tokens": lim.max_total_tokens, "max_batch_size": lim.max_batch_size,
        "max_client_batch_size": lim.max_batch_size, "validation_workers": 1,
        "router": "lmforge-serve", "version": VERSION, "sha": None, "docker_label": None,
    })


async def health(request: Request):
    state: ServerState = request.app.state.lmforge
    if not state.engine.alive:
        return JSONResponse({"error": "unhealthy", "error_type": "healthcheck"}, status_code=503)
    return Response(status_code=200)


async def metrics(request: Request):
    state: ServerState = request.app.state.lmforge
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


# ---- errors -----------------------------------------------------------------------
async def _api_error(request: Request, exc: ApiError):
    state = getattr(request.app.state, "lmforge", None)
    if state is not None:
        state.metrics.counters.inc("tgi_request_failure", err=exc.error_type)
    return exc.response()


def create_app(state: ServerState, *, manage_engine: bool = True) -> Starlette:
    """The ASGI app; with `manage_engine` the app starts and stops the engine thread."""
    from lmforge.serve import openai

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if manage_engine and not state.engine.alive:
            state.engine.start()
        try:
            yield
        finally:
            if manage_engine:
                state.engine.stop()

    routes = [
        Route("/", compat_generate, methods=["POST"]),
        Route("/generate", generate, methods=["POST"]),
        Route("/generate_stream", generate_stream, methods=["POST"]),
        Route("/tokenize", tokenize, methods=["POST"]),
        Route("/info", info, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *openai.routes(),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=exception_handlers(_api_error))
    app.state.lmforge = state
    return app
