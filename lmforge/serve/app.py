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

import contextlib
import functools
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.middleware import Middleware
from starlette.routing import Route

from lmforge.serve.http import JSON, ApiError, exception_handlers, is_openai
from lmforge.serve.protocol import (fit_tokens, generate_json, invalid, parse_generate, require_object,
                                    stream_json)
from lmforge.serve.openai import routes as openai_routes
from lmforge.serve.requests import VERSION, Pending, ServerState, event_stream, observe, read_body


# ---- TGI routes ---------------------------------------------------------------------
async def _generate(request: Request, stream: bool | None):
    state: ServerState = request.app.state.lmforge
    t0 = time.perf_counter()
    body = await read_body(request, state)
    opts, params, truncate = parse_generate(body, state.limits, stream=stream)
    ids = fit_tokens(await state.encode_async(opts.inputs, truncate=truncate), params, truncate, state.limits)
    validated = time.perf_counter()
    pending = Pending(state, ids, params, stream=opts.stream)
    if opts.stream:
        return event_stream(state, pending, functools.partial(stream_json, opts=opts, texts=state.texts), t0,
                            validated)
    try:
        f = await pending.result()
    finally:
        pending.close()
    observe(state, f, t0, validated, params)
    out = generate_json(f, opts, params, state.texts)
    return JSON([out] if stream is None else out)


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
    inputs = state.bound(inputs)  # the input limits hold here too (a 2 MB body was a 99 MB reply)

    def run():
        enc = state.tokenizer(inputs, add_special_tokens=True, return_offsets_mapping=True)
        if len(enc["input_ids"]) > state.limits.max_input_tokens:
            raise invalid(f"`inputs` must have less than {state.limits.max_input_tokens} tokens. "
                          f"Given: {len(enc['input_ids'])}")
        return [{"id": i, "text": inputs[a:b], "start": a, "stop": b}
                for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"])]

    return JSON(await run_in_threadpool(run))  # CPU work off the event loop


async def info(request: Request):
    state: ServerState = request.app.state.lmforge
    lim = state.limits
    return JSON({
        "model_id": state.model_id, "model_sha": state.model_sha, "model_dtype": state.model_dtype,
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
        return JSON({"error": "unhealthy", "error_type": "healthcheck"}, status_code=503)
    return Response(status_code=200)


async def metrics(request: Request):
    state: ServerState = request.app.state.lmforge
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


# ---- errors -----------------------------------------------------------------------
async def _api_error(request: Request, exc: ApiError):
    state = getattr(request.app.state, "lmforge", None)
    if state is not None:
        state.metrics.counters.inc("tgi_request_failure", err=exc.error_type)
    return exc.response(openai=is_openai(request.url.path))


class ModelHeaders:
    """Every reply names the model that made it (``x-model-id``, ``x-model-sha``), so a proxy in
    front (the gateway) sees a restart on another model without polling /info."""

    def __init__(self, app, state: ServerState):
        self.app, self.headers = app, [(b"x-model-id", state.model_id.encode("utf-8", "replace")),
                                       (b"x-model-sha", (state.model_sha or "unknown").encode())]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def named(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        await self.app(scope, receive, named)


def create_app(state: ServerState, *, manage_engine: bool = True) -> Starlette:
    """The ASGI app; with `manage_engine` the app starts and stops the engine thread."""
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
        *openai_routes(),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=exception_handlers(_api_error),
                    middleware=[Middleware(ModelHeaders, state=state)])
    app.state.lmforge = state
    return app
