"""The gateway's OpenAI routes: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``.

OpenAI clients (the ``openai`` package, lm-eval's ``local-completions``, most UIs)
talk to the gateway as to any OpenAI server, so these routes answer in OpenAI's
shapes, errors included (``{"error": {"message", "type", "param", "code"}}``), and
follow ``call.Call``'s order like the TGI routes. The request is checked against
OpenAI's own shape (``lmforge.serve.oai_types``, the models ``lmforge serve`` uses,
so the two accept the same requests) before anything goes upstream; content given
as a list of text parts is read as its text; every message the model will read
(system prompt, earlier turns, an assistant prefill) is classified, not only the
last user turn. Completions take text prompts only: token ids cannot be screened.
Streams pass chunks through, log once they end, and turn an upstream fault into an
SSE error event; OpenAI sends ``finish_reason: null`` until the last chunk.
"""
from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from lmforge.gateway.call import Call, next_event, open_stream, relay, upstream_call, with_body
from lmforge.serve.http import JSON, ApiError
from lmforge.serve.oai_types import ChatRequest, CompletionRequest, validate
from lmforge.serve.protocol import SSE_DONE, sse

_NOT_SENT = {"messages", "prompt", "stream", "stream_options", "model"}


def _text(choice: dict, chat: bool) -> str:
    v = (choice.get("delta") or choice.get("message") or {}).get("content") if chat else choice.get("text")
    return v if isinstance(v, str) else ""


def _usage(out: dict) -> dict:
    u = out.get("usage")
    return u if isinstance(u, dict) else {}


async def _events(call: Call, agen, first: dict, got: dict, want_usage: bool, chat: bool):
    """The upstream stream passed through as SSE, logged once it ends; ``got["completion"]`` kept current."""
    parts, usage, finish, item = [], None, None, first
    while item is not None:
        if isinstance(item.get("usage"), dict):
            usage = item["usage"]
        for ch in item.get("choices") or []:
            parts.append(_text(ch, chat))
            finish = ch.get("finish_reason") or finish
        got["completion"] = "".join(parts)
        if item.get("choices") or want_usage:
            yield sse(item)
        item = await next_event(agen)
    usage = usage or {}
    await call.log(200, completion="".join(parts), input_tokens=usage.get("prompt_tokens"),
                   output_tokens=usage.get("completion_tokens") or sum(1 for p in parts if p),
                   finish_reason=finish if isinstance(finish, str) else None, ttft=call.ttft)
    yield SSE_DONE


async def _run(call: Call, req, upstream_body: dict, chat: bool) -> Response:
    """Send ``upstream_body`` (streamed or not) and answer; ``call.start`` has run."""
    client = call.gw.client
    try:
        if req.stream:
            agen = (client.stream_chat if chat else client.stream_completion)(upstream_body).__aiter__()
            first = await open_stream(call, agen)
        else:
            out = await upstream_call(call, (client.chat if chat else client.completion)(upstream_body))
    except ApiError as err:
        return await call.fail(err)
    if not req.stream:
        usage, choice = _usage(out), out["choices"][0]
        await call.log(200, completion=_text(choice, chat), input_tokens=usage.get("prompt_tokens"),
                       output_tokens=usage.get("completion_tokens"),
                       finish_reason=choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str)
                       else None)
        return JSON(out, headers={"X-Request-Id": call.id})
    want_usage = bool(req.stream_options and req.stream_options.include_usage)
    got = {"completion": ""}
    return relay(call, _events(call, agen, first, got, want_usage, chat), got)


async def _chat(call: Call, body: dict) -> Response:
    try:
        req = validate(ChatRequest, body)
        call.rec["stream"] = bool(req.stream)
        texts = [m.text() for m in req.messages]
        users = [t for m, t in zip(req.messages, texts) if m.role == "user"]
        kwargs = req.model_dump(exclude_none=True, exclude=_NOT_SENT)
        logged = [{"role": m.role, "content": t} for m, t in zip(req.messages, texts)]
        await call.start(users[-1] if users else "", kwargs, logged, context=tuple(texts))
    except ApiError as err:
        return await call.fail(err)
    messages = [m.model_dump(exclude_none=True) for m in req.messages]
    return await _run(call, req, {"model": req.model or "tgi", "messages": messages, **kwargs}, chat=True)


async def chat(request: Request) -> Response:
    return await with_body(request, "/v1/chat/completions", _chat)


async def _completion(call: Call, body: dict) -> Response:
    try:
        req = validate(CompletionRequest, body)
        call.rec["stream"] = bool(req.stream)
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if not prompts or not all(isinstance(p, str) and p for p in prompts):
            raise ApiError(422, "Input validation error: `prompt` must be a non-empty string or list of them "
                                "(the gateway screens text, so token ids are not accepted)")
        kwargs = req.model_dump(exclude_none=True, exclude=_NOT_SENT)
        await call.start(prompts[0], kwargs, context=tuple(prompts[1:]))
    except ApiError as err:
        return await call.fail(err)
    return await _run(call, req, {"model": req.model or "tgi", "prompt": req.prompt, **kwargs}, chat=False)


async def completions(request: Request) -> Response:
    return await with_body(request, "/v1/completions", _completion)


async def models(request: Request) -> Response:
    """The upstream's model in OpenAI's list shape (what ``openai`` clients read first)."""
    gw = request.app.state.gw
    gw.check_auth(request, write=False)
    info = await gw.model_info()
    if not info.get("model_id"):
        raise ApiError(502, f"upstream {gw.upstream_url} has not named its model", "upstream")
    return JSON({"object": "list", "data": [{"id": info["model_id"], "object": "model", "created": int(time.time()),
                                             "owned_by": "lmforge", "root": info.get("model_version")}]})
