"""The gateway's generation routes: TGI's API in, ``AsyncClient`` out, one log line each.

Every route follows the same order, because a reply the user sees must already
be in the log: check the key, parse and validate the body with the client's own
request types (a bad request is the caller's 422, never a 5xx), classify it for
safety (blocked requests never reach the model), call upstream, then append the
request's line to ``requests.jsonl`` and wait for its fsync, and only then send
the reply — or, for a stream, the final event (``/generate_stream``) or the
closing ``data: [DONE]`` (chat). A stream the client abandons is still logged
(status 499) without waiting. The request id goes back in ``X-Request-Id`` for
``POST /feedback``.
"""
from __future__ import annotations

import asyncio
import json
import time

import aiohttp
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from text_generation import errors as tge
from text_generation.types import ChatRequest, Message
from text_generation.types import Request as TGIRequest

from lmforge.monitor.gateway import GatewayState, json_body, new_id, prompt_key
from lmforge.monitor.safety import classify
from lmforge.monitor.store import REQUESTS
from lmforge.monitor.upstream import (CLIENT_VALIDATION_ERRORS, UpstreamUnavailable, build_request,
                                      chat_kwargs, generate_kwargs)
from lmforge.serve.http import ApiError

_TGI_ERRORS = [(tge.ValidationError, 422, "validation"), (tge.OverloadedError, 429, "overloaded"),
               (tge.GenerationError, 424, "generation"),
               (tge.IncompleteGenerationError, 500, "incomplete_generation"),
               (tge.BadRequestError, 400, "validation"), (tge.ShardNotReadyError, 503, "unavailable"),
               (tge.ShardTimeoutError, 504, "timeout"), (tge.NotFoundError, 404, "not_found"),
               (tge.RateLimitExceededError, 429, "overloaded"), (tge.UnknownError, 502, "upstream")]


def upstream_error(gw: GatewayState, e: BaseException) -> ApiError | None:
    for cls, status, kind in _TGI_ERRORS:
        if isinstance(e, cls):
            return ApiError(status, str(e), kind)
    if isinstance(e, (aiohttp.ClientError, asyncio.TimeoutError, UpstreamUnavailable,
                      json.JSONDecodeError)):
        return ApiError(502, f"upstream {gw.upstream_url}: {type(e).__name__}: {e}", "upstream")
    return None


def sse(payload: dict | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data:{data}\n\n".encode()


class Call:
    """One generation request: its id, timings, verdict and finally its log line."""

    def __init__(self, gw: GatewayState, request: Request, route: str):
        self.gw, self.route, self.t0 = gw, route, time.perf_counter()
        self.id = new_id()
        self.rec: dict = {"id": self.id, "ts": time.time(), "route": route, "stream": False}
        gw.check_auth(request, write=True)

    def start(self, prompt: str, params: dict, messages: list | None = None) -> None:
        verdict = classify(prompt)
        self.rec.update(prompt=prompt, parameters=params, messages=messages,
                        safety=verdict.as_dict())
        if verdict.verdict == "block" and self.gw.cfg.block_unsafe:
            raise ApiError(400, "request refused by the safety policy "
                           f"(categories: {', '.join(verdict.categories)})", "safety")

    def record(self, status: int, completion: str | None = None, input_tokens: int | None = None,
               output_tokens: int | None = None, finish_reason: str | None = None,
               error: str | None = None, ttft: float | None = None) -> dict:
        gw, rec = self.gw, self.rec
        latency = time.perf_counter() - self.t0
        if completion is not None and rec.get("prompt") is not None:
            rec["safety"] = classify(rec["prompt"], completion).as_dict()
        model = gw.model or {}
        rec.update(status=status, completion=completion, error=error, finish_reason=finish_reason,
                   input_tokens=input_tokens, output_tokens=output_tokens,
                   cost=gw.cost(input_tokens, output_tokens), latency_ms=round(latency * 1e3, 3),
                   ttft_ms=None if ttft is None else round(ttft * 1e3, 3),
                   model_id=model.get("model_id"), model_version=model.get("model_version"))
        gw.metrics.requests.labels(self.route, str(status)).inc()
        gw.metrics.duration.labels(self.route).observe(latency)
        if "safety" in rec:
            gw.metrics.safety.labels(rec["safety"]["verdict"]).inc()
        gw.metrics.tokens.labels("input").inc(input_tokens or 0)
        gw.metrics.tokens.labels("output").inc(output_tokens or 0)
        gw.metrics.cost.inc(rec["cost"])
        gw.requests[self.id] = (prompt_key(rec.get("prompt") or ""), status == 200)
        return rec

    async def log(self, status: int, **kw) -> None:
        await self.gw.writer.append_async(REQUESTS, self.record(status, **kw))

    async def fail(self, err: ApiError) -> Response:
        if "prompt" in self.rec:  # refused before parsing (bad JSON): nothing worth a line
            await self.log(err.status, error=err.message)
        else:
            self.gw.metrics.requests.labels(self.route, str(err.status)).inc()
        return err.response({"X-Request-Id": self.id})


def _gen_body(body: dict) -> tuple[str, dict]:
    prompt, params = body.get("inputs"), body.get("parameters") or {}
    if not isinstance(prompt, str) or not prompt:
        raise ApiError(422, "`inputs` must be a non-empty string")
    if not isinstance(params, dict):
        raise ApiError(422, "`parameters` must be an object")
    return prompt, params


def _validated(prompt: str, kwargs: dict, stream: bool) -> TGIRequest:
    """The client's own request validation, before any upstream call: failures are the caller's."""
    try:
        return build_request(prompt, kwargs, stream)
    except CLIENT_VALIDATION_ERRORS as e:
        raise ApiError(422, f"invalid parameters: {e}") from e


def _parse_generate(body: dict) -> tuple[str, dict, dict]:
    """Body → (prompt, params, text-generation client kwargs); bad input is a 422."""
    prompt, params = _gen_body(body)
    try:
        return prompt, params, generate_kwargs(params)
    except TypeError as e:
        raise ApiError(422, str(e)) from e


async def _with_body(request: Request, route: str, handler, **kw) -> Response:
    """Check the key, read the JSON body once (bounded and strict), then run the route's handler."""
    call = Call(request.app.state.gw, request, route)
    try:
        body = await json_body(request, call.gw.cfg.max_body_bytes)
    except ApiError as err:
        return await call.fail(err)
    return await handler(call, body, **kw)


async def _generate(call: Call, body: dict, as_list: bool) -> Response:
    gw, route = call.gw, call.route
    try:
        prompt, params, kwargs = _parse_generate(body)
        call.start(prompt, params)
        kwargs["decoder_input_details"] = True  # prefill length = input tokens
        tgi_request = _validated(prompt, kwargs, stream=False)
        if gw.model is None:
            await gw.model_info()
        t_up = time.perf_counter()
        gw.metrics.inflight.inc()
        try:
            resp = await gw.client.send_generate(tgi_request)
        except Exception as e:  # noqa: BLE001 - mapped below or re-raised
            err = upstream_error(gw, e)
            if err is None:
                raise
            raise err from e
        finally:
            gw.metrics.inflight.dec()
            gw.metrics.upstream.labels(route).observe(time.perf_counter() - t_up)
    except ApiError as err:
        return await call.fail(err)
    d = resp.details
    await call.log(200, completion=resp.generated_text, input_tokens=len(d.prefill) or None,
                   output_tokens=d.generated_tokens, finish_reason=str(d.finish_reason.value))
    out = resp.model_dump(mode="json")
    if not params.get("details"):
        out = {"generated_text": resp.generated_text}
    elif not params.get("decoder_input_details"):
        out["details"]["prefill"] = []
    return JSONResponse([out] if as_list else out, headers={"X-Request-Id": call.id})


async def generate(request: Request) -> Response:
    return await _with_body(request, "/generate", _generate, as_list=False)


async def _prefetch(call: Call, agen) -> tuple:
    """First upstream event, so an upstream error becomes a proper HTTP status."""
    try:
        return await agen.__anext__()
    except StopAsyncIteration:
        raise ApiError(502, "upstream closed the stream before the first event", "upstream")
    except Exception as e:  # noqa: BLE001
        err = upstream_error(call.gw, e)
        if err is None:
            raise
        raise err from e


def _stream_response(call: Call, events) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"X-Request-Id": call.id, "Cache-Control": "no-cache"})


async def _generate_stream(call: Call, body: dict) -> Response:
    gw, route = call.gw, call.route
    call.rec["stream"] = True
    try:
        prompt, params, kwargs = _parse_generate(body)
        kwargs.pop("decoder_input_details", None)
        call.start(prompt, params)
        tgi_request = _validated(prompt, kwargs, stream=True)
        if gw.model is None:
            await gw.model_info()
        agen = gw.client.stream_generate(tgi_request)
        first = await _prefetch(call, agen)
    except ApiError as err:
        return await call.fail(err)
    ttft = time.perf_counter() - call.t0
    gw.metrics.ttft.labels(route).observe(ttft)

    async def events():
        item, n, done = first, 0, False
        try:
            while item is not None:
                resp, raw = item
                if resp.details is not None:  # the final event: log it before sending it
                    await call.log(200, completion=raw.get("generated_text"),
                                   input_tokens=raw["details"].get("input_length"),
                                   output_tokens=resp.details.generated_tokens,
                                   finish_reason=str(resp.details.finish_reason.value), ttft=ttft)
                    done = True
                    if not params.get("details"):
                        raw = {**raw, "details": None}
                    yield sse(raw)
                    return
                n += 1
                yield sse(raw)
                try:
                    item = await agen.__anext__()
                except StopAsyncIteration:
                    item = None
            raise ApiError(502, "upstream stream ended without its final event", "upstream")
        except (asyncio.CancelledError, GeneratorExit):
            if not done:  # the client went away: log what it got, without waiting
                gw.writer.append(REQUESTS, call.record(499, error="client disconnected",
                                                       output_tokens=n, ttft=ttft))
            raise
        except Exception as e:  # noqa: BLE001 - an error mid-stream becomes an SSE error event
            err = e if isinstance(e, ApiError) else upstream_error(gw, e)
            if err is None:
                raise
            await call.log(err.status, error=err.message, output_tokens=n, ttft=ttft)
            yield sse({"error": err.message, "error_type": err.error_type})

    return _stream_response(call, events())


async def generate_stream(request: Request) -> Response:
    return await _with_body(request, "/generate_stream", _generate_stream)


async def _compat(call: Call, body: dict) -> Response:
    if body.get("stream", False) is True:
        return await _generate_stream(call, body)
    return await _generate(call, body, as_list=True)


async def compat(request: Request) -> Response:
    """TGI's ``POST /``: ``stream: true`` streams, otherwise a one-element list."""
    return await _with_body(request, "/", _compat)


def _chat_body(body: dict) -> tuple[list[dict], str, dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise ApiError(422, "`messages` must be a non-empty list of objects")
    try:
        kwargs = chat_kwargs(body)
        ChatRequest(model="tgi", messages=[Message(**m) for m in messages], **kwargs)
    except CLIENT_VALIDATION_ERRORS as e:
        raise ApiError(422, f"invalid chat request: {e}") from e
    users = [m.get("content") or "" for m in messages if m.get("role") == "user"]
    return messages, (users[-1] if users else ""), kwargs


async def chat(request: Request) -> Response:
    return await _with_body(request, "/v1/chat/completions", _chat)


async def _chat(call: Call, body: dict) -> Response:
    gw = call.gw
    try:
        messages, prompt, kwargs = _chat_body(body)
        stream = body.get("stream", False) is True
        call.rec["stream"] = stream
        call.start(prompt, kwargs, messages)
        if gw.model is None:
            await gw.model_info()
        if stream:
            agen = gw.client.stream_chat(messages, **kwargs).__aiter__()
            first = await _prefetch(call, agen)
        else:
            t_up = time.perf_counter()
            try:
                resp = await gw.client.chat([Message(**m) for m in messages], **kwargs)
            except Exception as e:  # noqa: BLE001
                err = upstream_error(gw, e)
                if err is None:
                    raise
                raise err from e
            finally:
                gw.metrics.upstream.labels(call.route).observe(time.perf_counter() - t_up)
    except ApiError as err:
        return await call.fail(err)
    if not stream:
        out = resp.model_dump(mode="json")
        usage = out.get("usage") or {}
        choice = out["choices"][0]
        await call.log(200, completion=choice["message"].get("content"),
                       input_tokens=usage.get("prompt_tokens"),
                       output_tokens=usage.get("completion_tokens"),
                       finish_reason=choice.get("finish_reason"))
        return JSONResponse(out, headers={"X-Request-Id": call.id})

    ttft = time.perf_counter() - call.t0
    gw.metrics.ttft.labels(call.route).observe(ttft)
    want_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    async def events():
        parts, usage, finish, item, done = [], None, None, first, False
        try:
            while item is not None:
                if item.get("usage"):
                    usage = item["usage"]
                for ch in item.get("choices") or []:
                    parts.append((ch.get("delta") or {}).get("content") or "")
                    finish = ch.get("finish_reason") or finish
                if item.get("choices") or want_usage:
                    yield sse(item)
                try:
                    item = await agen.__anext__()
                except StopAsyncIteration:
                    item = None
            usage = usage or {}
            await call.log(200, completion="".join(parts), input_tokens=usage.get("prompt_tokens"),
                           output_tokens=usage.get("completion_tokens") or sum(1 for p in parts if p),
                           finish_reason=finish, ttft=ttft)
            done = True
            yield sse("[DONE]")
        except (asyncio.CancelledError, GeneratorExit):
            if not done:
                gw.writer.append(REQUESTS, call.record(499, completion="".join(parts),
                                                       error="client disconnected", ttft=ttft))
            raise
        except Exception as e:  # noqa: BLE001
            err = upstream_error(gw, e)
            if err is None:
                raise
            await call.log(err.status, error=err.message, ttft=ttft)
            yield sse({"error": err.message, "error_type": err.error_type})

    return _stream_response(call, events())
