"""One generation request through the gateway, from key check to log line; shared by both dialects.

The TGI routes (``proxy``) and the OpenAI routes (``oai_routes``) follow the same
order, because a reply the user sees must already be in the log: check the key,
read the body, validate it, classify every text the model will read, call upstream,
append the request's line to ``requests.jsonl`` and wait for its fsync, and only then
answer. ``Call`` carries one request through that; it lives here, below both route
modules, so neither imports the other.

Every reply that carries an ``X-Request-Id`` has a log line under that id (a 422 from
the gateway's own checks and an upstream fault included), so feedback on it is
answered by what happened rather than a 404. A 401 carries an id too, but its line
goes to the process log only: an unauthenticated caller writes nothing to the store. Every upstream fault is the gateway's
502 (``upstream_error``), and marks the model provenance stale so the next line
re-reads it. The upstream side of every route goes through three helpers here:
``upstream_call`` (one reply), ``open_stream`` (a stream's first event) and ``relay``
(the rest of a stream: a fault becomes an SSE error event, a client that leaves a 499
line), so the fault mapping and the disconnect line have one home.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from lmforge.feedback.store import REQUESTS
from lmforge.gateway.safety import classify
from lmforge.gateway.state import GatewayState, json_body, new_id, prompt_key
from lmforge.gateway.upstream import UpstreamError, UpstreamUnavailable
from lmforge.serve.http import ApiError, is_openai
from lmforge.serve.protocol import sse

log = logging.getLogger(__name__)
# Upstream statuses passed on as they are; anything else is the gateway's 502.
_PASSED_STATUSES = {400, 404, 413, 422, 424, 429, 500, 503, 504}


def upstream_error(gw: GatewayState, e: BaseException) -> ApiError | None:
    """The reply for an exception raised while talking to upstream; None if it is not upstream's."""
    if isinstance(e, UpstreamError):
        return ApiError(e.status if e.status in _PASSED_STATUSES else 502, e.message, e.error_type)
    if isinstance(e, (httpx.HTTPError, asyncio.TimeoutError, UpstreamUnavailable, json.JSONDecodeError)):
        gw.stale = True  # it may have restarted on another model
        return ApiError(502, f"upstream {gw.upstream_url}: {type(e).__name__}: {str(e)[:500]}", "upstream")
    return None


class Call:
    """One generation request: its id, timings, verdict and finally its log line."""

    def __init__(self, gw: GatewayState, request: Request, route: str):
        self.gw, self.route, self.t0 = gw, route, time.perf_counter()
        self.id = new_id()
        self.openai = is_openai(route)
        self.rec: dict = {"id": self.id, "ts": time.time(), "route": route, "stream": False}
        self.context: tuple[str, ...] = ()
        self.logged = False  # the line is written: a later disconnect writes no 499
        self.ttft: float | None = None

    async def start(self, prompt: str, params: dict, messages: list | None = None,
                    context: tuple[str, ...] = ()) -> None:
        """Classify ``prompt`` and every other text the model reads (``context``); refuse a blocked one.
        The detectors take milliseconds per text (more on a megabyte prompt): off the event loop."""
        verdict = await asyncio.to_thread(classify, prompt, None, context)
        self.rec.update(prompt=prompt, parameters=params, messages=messages, safety=verdict.as_dict())
        self.context = context
        if verdict.verdict == "block" and self.gw.cfg.block_unsafe:
            raise ApiError(400, "request refused by the safety policy "
                           f"(categories: {', '.join(verdict.categories)})", "safety")

    def record(self, status: int, completion: str | None = None, input_tokens: int | None = None,
               output_tokens: int | None = None, finish_reason: str | None = None,
               error: str | None = None, ttft: float | None = None) -> dict:
        gw, rec = self.gw, self.rec
        latency = time.perf_counter() - self.t0
        model = gw.model or {}
        rec.update(status=status, completion=completion, error=error, finish_reason=finish_reason,
                   input_tokens=_count(input_tokens), output_tokens=_count(output_tokens),
                   latency_ms=round(latency * 1e3, 3), ttft_ms=None if ttft is None else round(ttft * 1e3, 3),
                   model_id=model.get("model_id"), model_version=model.get("model_version"))
        rec["cost"] = gw.cost(rec["input_tokens"], rec["output_tokens"])
        gw.metrics.requests.labels(self.route, str(status)).inc()
        gw.metrics.duration.labels(self.route).observe(latency)
        if "safety" in rec:
            gw.metrics.safety.labels(rec["safety"]["verdict"]).inc()
        gw.metrics.tokens.labels("input").inc(rec["input_tokens"] or 0)
        gw.metrics.tokens.labels("output").inc(rec["output_tokens"] or 0)
        gw.metrics.cost.inc(rec["cost"])
        gw.requests[self.id] = (prompt_key(rec.get("prompt") or ""), status == 200)
        return gw.cut(rec)

    async def log(self, status: int, **kw) -> None:
        """Append the request's line (the verdict now covers the completion too) and wait for its fsync."""
        if kw.get("completion") is not None and self.rec.get("prompt") is not None:
            verdict = await asyncio.to_thread(classify, self.rec["prompt"], kw["completion"], self.context)
            self.rec["safety"] = verdict.as_dict()
        await self.gw.model_info()  # re-read provenance first if it may have changed
        await self.gw.writer.append_async(REQUESTS, self.record(status, **kw))
        self.logged = True

    async def fail(self, err: ApiError) -> Response:
        """The error reply in the route's dialect, logged under the id it carries."""
        await self.log(err.status, error=err.message)
        return err.response({"X-Request-Id": self.id}, openai=self.openai)

    def error_event(self, err: ApiError) -> dict:
        return err.body(self.openai)


def _count(n) -> int | None:
    """A token count from upstream, or None if it is not a sane one."""
    return n if isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2 ** 40 else None


async def with_body(request: Request, route: str, handler, **kw) -> Response:
    """Check the key, read the JSON body once (bounded and strict), then run the route's handler."""
    call = Call(request.app.state.gw, request, route)
    try:
        call.gw.check_auth(request, write=True)
    except ApiError as err:
        log.warning("request %s on %s: %d %s", call.id, route, err.status, err.message)
        return err.response({"X-Request-Id": call.id}, openai=call.openai)
    try:
        body = await json_body(request, call.gw.cfg.max_body_bytes)
    except ApiError as err:
        return await call.fail(err)
    return await handler(call, body, **kw)


async def open_stream(call: Call, agen) -> dict:
    """A stream's first upstream event, so an upstream error becomes a proper HTTP status; sets ``call.ttft``."""
    await call.gw.model_info()
    try:
        first = await agen.__anext__()
    except StopAsyncIteration:
        raise ApiError(502, "upstream closed the stream before the first event", "upstream")
    except Exception as e:  # noqa: BLE001
        err = upstream_error(call.gw, e)
        if err is None:
            raise
        raise err from e
    call.ttft = time.perf_counter() - call.t0
    call.gw.metrics.ttft.labels(call.route).observe(call.ttft)
    return first


async def next_event(agen) -> dict | None:
    """The stream's next upstream event, or None at its end."""
    try:
        return await agen.__anext__()
    except StopAsyncIteration:
        return None


async def upstream_call(call: Call, coro):
    """Await one non-streaming upstream call; its faults become ApiErrors (502 for upstream's own)."""
    gw = call.gw
    await gw.model_info()
    t_up = time.perf_counter()
    gw.metrics.inflight.inc()
    try:
        return await coro
    except Exception as e:  # noqa: BLE001 - mapped below or re-raised
        err = upstream_error(gw, e)
        if err is None:
            raise
        raise err from e
    finally:
        gw.metrics.inflight.dec()
        gw.metrics.upstream.labels(call.route).observe(time.perf_counter() - t_up)


def relay(call: Call, events, got: dict) -> StreamingResponse:
    """Send ``events`` (the route's SSE lines; it logs the final event before sending it) as the reply.

    ``got`` is what the client has had so far, as ``Call.record`` keywords, kept current by
    ``events``. A client that goes away before the line is written gets a 499 line, appended
    without waiting; an upstream fault mid-stream is logged and sent as an SSE error event.
    """
    async def guarded():
        try:
            async for line in events:
                yield line
        except (asyncio.CancelledError, GeneratorExit):
            if not call.logged:
                call.gw.writer.append(REQUESTS, call.record(499, error="client disconnected", ttft=call.ttft,
                                                            **got))
            raise
        except Exception as e:  # noqa: BLE001 - an error mid-stream becomes an SSE error event
            err = e if isinstance(e, ApiError) else upstream_error(call.gw, e)
            if err is None:
                raise
            await call.log(err.status, error=err.message, ttft=call.ttft, **got)
            yield sse(call.error_event(err))

    return StreamingResponse(guarded(), media_type="text/event-stream",
                             headers={"X-Request-Id": call.id, "Cache-Control": "no-cache"})
