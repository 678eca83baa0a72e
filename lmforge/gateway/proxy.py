"""The gateway's generation routes: TGI's API in, ``UpstreamClient`` out, one log line each.

Every route follows the same order, because a reply the user sees must already
be in the log: check the key, parse and validate the body with ``lmforge serve``'s
own TGI checks (a bad request is the caller's 422, never a 5xx), classify it for
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

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from lmforge.gateway.state import GatewayState, json_body, new_id, prompt_key
from lmforge.gateway.safety import classify
from lmforge.feedback.store import REQUESTS
from lmforge.gateway.upstream import UpstreamError, UpstreamUnavailable
from lmforge.serve.http import ApiError
from lmforge.serve.protocol import SSE_DONE, Limits, sampling_params, sse

# TGI GenerateParameters keys; unknown keys are refused (a typo would silently change nothing).
_GENERATE_KEYS = {"do_sample", "max_new_tokens", "best_of", "repetition_penalty", "frequency_penalty",
                  "return_full_text", "seed", "stop", "temperature", "top_k", "top_p", "truncate",
                  "typical_p", "watermark", "decoder_input_details", "top_n_tokens", "grammar",
                  "details", "adapter_id"}
_PASSED_UNCHECKED = {"watermark", "grammar", "adapter_id"}  # the upstream's to accept or refuse
_CHAT_KEYS = {"repetition_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
              "max_tokens", "n", "presence_penalty", "seed", "temperature", "top_p", "tools",
              "tool_choice"}
# Token limits are the upstream's; the gateway checks types and value ranges only.
_BIG = 2 ** 31
_VALUE_LIMITS = Limits(max_input_tokens=_BIG, max_total_tokens=_BIG, max_stop_sequences=_BIG,
                       max_top_n_tokens=_BIG, max_best_of=_BIG)
# Upstream statuses passed on as they are; anything else is the gateway's 502.
_PASSED_STATUSES = {400, 404, 413, 422, 424, 429, 500, 503, 504}


def upstream_error(gw: GatewayState, e: BaseException) -> ApiError | None:
    if isinstance(e, UpstreamError):
        return ApiError(e.status if e.status in _PASSED_STATUSES else 502, e.message, e.error_type)
    if isinstance(e, (httpx.HTTPError, asyncio.TimeoutError, UpstreamUnavailable, json.JSONDecodeError)):
        return ApiError(502, f"upstream {gw.upstream_url}: {type(e).__name__}: {e}", "upstream")
    return None


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


def _parse_generate(body: dict, stream: bool) -> tuple[str, dict, dict]:
    """Body → (prompt, params, upstream body); bad input is a 422 before any upstream call.

    ``details`` is always on upstream (the log needs token counts) and trimmed by the
    gateway if not asked for.
    """
    prompt, params = _gen_body(body)
    unknown = set(params) - _GENERATE_KEYS
    if unknown:
        raise ApiError(422, f"unknown parameter(s): {sorted(unknown)}")
    sampling_params({k: v for k, v in params.items() if k not in _PASSED_UNCHECKED}, _VALUE_LIMITS)
    sent = {k: v for k, v in params.items() if v is not None}
    sent.update(details=True, decoder_input_details=not stream)  # prefill length = input tokens
    return prompt, params, {"inputs": prompt, "parameters": sent}


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
        prompt, params, upstream_body = _parse_generate(body, stream=False)
        call.start(prompt, params)
        if gw.model is None:
            await gw.model_info()
        t_up = time.perf_counter()
        gw.metrics.inflight.inc()
        try:
            resp = await gw.client.generate(upstream_body)
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
    d = resp["details"]
    await call.log(200, completion=resp["generated_text"],
                   input_tokens=len(d.get("prefill") or []) or d.get("input_length"),
                   output_tokens=d["generated_tokens"], finish_reason=d["finish_reason"])
    out = {**resp, "details": {k: v for k, v in d.items() if k != "input_length"}}  # TGI's Details
    if not params.get("details"):
        out = {"generated_text": resp["generated_text"]}
    elif not params.get("decoder_input_details"):
        out["details"]["prefill"] = []
    return JSONResponse([out] if as_list else out, headers={"X-Request-Id": call.id})


async def generate(request: Request) -> Response:
    return await _with_body(request, "/generate", _generate, as_list=False)


async def _prefetch(call: Call, agen) -> dict:
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
        prompt, params, upstream_body = _parse_generate(body, stream=True)
        call.start(prompt, params)
        if gw.model is None:
            await gw.model_info()
        agen = gw.client.stream_generate(upstream_body)
        first = await _prefetch(call, agen)
    except ApiError as err:
        return await call.fail(err)
    ttft = time.perf_counter() - call.t0
    gw.metrics.ttft.labels(route).observe(ttft)

    async def events():
        item, n, done = first, 0, False
        try:
            while item is not None:
                raw = item
                if raw.get("details") is not None:  # the final event: log it before sending it
                    await call.log(200, completion=raw.get("generated_text"),
                                   input_tokens=raw["details"].get("input_length"),
                                   output_tokens=raw["details"].get("generated_tokens"),
                                   finish_reason=raw["details"].get("finish_reason"), ttft=ttft)
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
            yield sse(err.body())

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
    unknown = set(body) - _CHAT_KEYS - {"messages", "stream", "model", "stream_options"}
    if unknown:
        raise ApiError(422, f"invalid chat request: unknown field(s): {sorted(unknown)}")
    for m in messages:
        if not isinstance(m.get("role"), str) or not isinstance(m.get("content"), (str, list, type(None))):
            raise ApiError(422, "invalid chat request: every message needs a string `role` and a "
                                "string or list `content`")
    kwargs = {k: v for k, v in body.items() if k in _CHAT_KEYS and v is not None}
    users = [m.get("content") or "" for m in messages if m.get("role") == "user"]
    return messages, (users[-1] if users else ""), kwargs


async def chat(request: Request) -> Response:
    return await _with_body(request, "/v1/chat/completions", _chat)


async def _chat_events(call: Call, agen, first: dict, ttft: float, want_usage: bool):
    """The chat stream passed through as SSE, logged once it ends (as a 499 when the client leaves)."""
    gw = call.gw
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
        yield SSE_DONE
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
        yield sse(err.body())


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
            agen = gw.client.stream_chat({"model": body.get("model") or "tgi", "messages": messages,
                                          **kwargs}).__aiter__()
            first = await _prefetch(call, agen)
        else:
            t_up = time.perf_counter()
            try:
                out = await gw.client.chat({"model": body.get("model") or "tgi", "messages": messages, **kwargs})
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

    return _stream_response(call, _chat_events(call, agen, first, ttft, want_usage))
