"""The gateway's TGI routes: TGI's API in, ``UpstreamClient`` out, one log line each.

Every route follows ``call.Call``'s order, because a reply the user sees must already
be in the log: check the key, parse and validate the body with ``lmforge serve``'s
own TGI checks (a bad request is the caller's 422, never a 5xx), classify it for
safety (blocked requests never reach the model), call upstream, then append the
request's line to ``requests.jsonl`` and wait for its fsync, and only then send
the reply — or, for a stream, the final event. A stream the client abandons is still
logged (status 499) without waiting. The request id goes back in ``X-Request-Id``
for ``POST /feedback``. The OpenAI routes live in ``oai_routes``.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from lmforge.gateway.call import Call, next_event, open_stream, relay, upstream_call, with_body
from lmforge.serve.http import JSON, ApiError
from lmforge.serve.protocol import Limits, sampling_params, sse

# TGI GenerateParameters keys; unknown keys are refused (a typo would silently change nothing).
_GENERATE_KEYS = {"do_sample", "max_new_tokens", "best_of", "repetition_penalty", "frequency_penalty",
                  "return_full_text", "seed", "stop", "temperature", "top_k", "top_p", "truncate",
                  "typical_p", "watermark", "decoder_input_details", "top_n_tokens", "grammar",
                  "details", "adapter_id"}
_PASSED_UNCHECKED = {"watermark", "grammar", "adapter_id"}  # the upstream's to accept or refuse
# Token limits are the upstream's; the gateway checks types and value ranges only.
_BIG = 2 ** 31
_VALUE_LIMITS = Limits(max_input_tokens=_BIG, max_total_tokens=_BIG, max_stop_sequences=_BIG,
                       max_top_n_tokens=_BIG, max_best_of=_BIG)
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


async def _generate(call: Call, body: dict, as_list: bool) -> Response:
    try:
        prompt, params, upstream_body = _parse_generate(body, stream=False)
        await call.start(prompt, params)
        resp = await upstream_call(call, call.gw.client.generate(upstream_body))
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
    return JSON([out] if as_list else out, headers={"X-Request-Id": call.id})


async def generate(request: Request) -> Response:
    return await with_body(request, "/generate", _generate, as_list=False)


async def _generate_stream(call: Call, body: dict) -> Response:
    call.rec["stream"] = True
    try:
        prompt, params, upstream_body = _parse_generate(body, stream=True)
        await call.start(prompt, params)
        agen = call.gw.client.stream_generate(upstream_body)
        first = await open_stream(call, agen)
    except ApiError as err:
        return await call.fail(err)
    got = {"output_tokens": 0}

    async def events():
        item = first
        while item is not None:
            if item.get("details") is not None:  # the final event: log it before sending it
                d = item["details"]
                await call.log(200, completion=item.get("generated_text"), input_tokens=d.get("input_length"),
                               output_tokens=d.get("generated_tokens"), finish_reason=d.get("finish_reason"),
                               ttft=call.ttft)
                yield sse(item if params.get("details") else {**item, "details": None})
                return
            got["output_tokens"] += 1
            yield sse(item)
            item = await next_event(agen)
        raise ApiError(502, "upstream stream ended without its final event", "upstream")

    return relay(call, events(), got)


async def generate_stream(request: Request) -> Response:
    return await with_body(request, "/generate_stream", _generate_stream)


async def _compat(call: Call, body: dict) -> Response:
    if body.get("stream", False) is True:
        return await _generate_stream(call, body)
    return await _generate(call, body, as_list=True)


async def compat(request: Request) -> Response:
    """TGI's ``POST /``: ``stream: true`` streams, otherwise a one-element list."""
    return await with_body(request, "/", _compat)
