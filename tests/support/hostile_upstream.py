"""A TGI-like upstream that misbehaves on request: the gateway's tests of upstream faults.

Run: `python hostile_upstream.py PORT`. The prompt (TGI `inputs`, the last chat message,
or a completion `prompt`) names the fault, e.g. "FAULT:list"; any other prompt gets a
well-formed reply. `POST /_control {"model": ..., "sha": ..., "down": bool}` switches the
model it claims to serve (a restart on another model) or makes /health fail.

Faults: list, number, empty_choices, details_empty, surrogate, neginf (a -Infinity
logprob), huge (a 20 MB reply), long (50,000 characters of text), trickle (a byte a second), and for streams sse_number,
sse_null, sse_huge_line.
"""
from __future__ import annotations

import asyncio
import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

STATE = {"model": "hostile/model-a", "sha": "a" * 64, "down": False}


def _headers() -> dict:
    return {"x-model-id": STATE["model"], "x-model-sha": STATE["sha"]}


def _raw(text: str, status: int = 200) -> Response:
    return Response(text, status_code=status, media_type="application/json", headers=_headers())


def _fault(body: dict) -> str:
    msgs = body.get("messages") or [{}]
    text = body.get("inputs") or body.get("prompt") or msgs[-1].get("content") or ""
    return text[6:] if isinstance(text, str) and text.startswith("FAULT:") else ""


def _good(route: str) -> dict:
    usage = {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
    if route == "/generate":
        return {"generated_text": " ok", "details": {"finish_reason": "length", "generated_tokens": 1, "seed": None,
                                                     "prefill": [], "tokens": [], "top_tokens": []}}
    if route == "/v1/chat/completions":
        return {"id": "c", "object": "chat.completion", "created": 0, "model": STATE["model"], "usage": usage,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": " ok"}, "finish_reason": "length"}]}
    return {"id": "c", "object": "text_completion", "created": 0, "model": STATE["model"], "usage": usage,
            "choices": [{"index": 0, "text": " ok", "finish_reason": "length", "logprobs": None}]}


async def _trickle():
    for _ in range(60):
        yield b" "
        await asyncio.sleep(1)


async def answer(request: Request) -> Response:
    route = request.url.path
    body = json.loads(await request.body())
    fault = _fault(body)
    stream = route == "/generate_stream" or body.get("stream") is True
    if stream:
        return StreamingResponse(_events(route, fault), media_type="text/event-stream", headers=_headers())
    good = _good(route)
    if fault == "list":
        return _raw("[1, 2]")
    if fault == "number":
        return _raw("5")
    if fault == "empty_choices":
        return _raw('{"choices": []}')
    if fault == "details_empty":
        return _raw('{"details": {}}')
    if fault == "surrogate":
        return _raw(json.dumps(good).replace(" ok", "\\ud800 ok"))
    if fault == "neginf":
        if route == "/generate":
            good["details"]["tokens"] = [{"id": 1, "text": " ok", "logprob": float("-inf"), "special": False}]
        else:
            good["choices"][0]["logprobs"] = {"content": [{"token": " ok", "logprob": float("-inf")}]}
        return _raw(json.dumps(good))
    if fault == "huge":
        return _raw(json.dumps({**good, "pad": "x" * 20_000_000}))
    if fault == "trickle":
        return StreamingResponse(_trickle(), media_type="application/json", headers=_headers())
    if fault == "long" and route == "/generate":
        good["generated_text"] = "y" * 50_000
    return _raw(json.dumps(good))


async def _events(route: str, fault: str):
    tgi = route == "/generate_stream"
    tok = {"index": 0, "token": {"id": 1, "text": " ok", "logprob": -0.1, "special": False}, "top_tokens": None,
           "generated_text": None, "details": None}
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": STATE["model"],
             "choices": [{"index": 0, "delta": {"content": " ok"}, "finish_reason": None}]}
    if route == "/v1/completions":
        chunk["choices"] = [{"index": 0, "text": " ok", "finish_reason": None}]
    yield b"data:" + json.dumps(tok if tgi else chunk).encode() + b"\n\n"
    if fault == "sse_number":
        yield b"data: 5\n\n"
    elif fault == "sse_null":
        yield b"data: null\n\n"
    elif fault == "sse_huge_line":
        yield b"data:" + b"x" * 20_000_000
    elif fault == "trickle":
        async for b in _trickle():
            yield b
    if tgi:
        yield b"data:" + json.dumps({**tok, "generated_text": " ok", "details": {
            "finish_reason": "length", "generated_tokens": 1, "seed": None, "input_length": 2}}).encode() + b"\n\n"
    else:
        yield b"data:" + json.dumps({**chunk, "choices": [{"index": 0, "delta": {}, "text": "",
                                                           "finish_reason": "length"}],
                                     "usage": {"prompt_tokens": 2, "completion_tokens": 1}}).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"


async def info(request: Request) -> Response:
    return JSONResponse({"model_id": STATE["model"], "model_sha": STATE["sha"], "max_input_tokens": 100,
                         "max_total_tokens": 200}, headers=_headers())


async def health(request: Request) -> Response:
    return Response(status_code=503 if STATE["down"] else 200)


async def control(request: Request) -> Response:
    STATE.update(json.loads(await request.body()))
    return JSONResponse(STATE)


app = Starlette(routes=[
    Route("/info", info), Route("/health", health), Route("/_control", control, methods=["POST"]),
    *[Route(p, answer, methods=["POST"]) for p in ("/generate", "/generate_stream", "/v1/chat/completions",
                                                   "/v1/completions")],
])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
