"""A stand-in for an OpenAI-only upstream (vLLM-like): only /v1/* routes, /health and /metrics.

TGI is archived and its successors speak only OpenAI's API, so the gateway must work in
front of one. This app answers deterministically: a completion of `max_tokens` words
" w0 w1 ...", finish_reason "length", usage counting prompt words; streams send one
word a chunk, a usage chunk when asked, then `[DONE]`. A context over MAX_LEN is
vLLM's 400 error body. Run: `python openai_standin.py PORT`.
"""
from __future__ import annotations

import json
import sys
import time

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

MODEL, ROOT, MAX_LEN = "standin/tiny-chat", "/models/tiny-chat-rev7", 2048


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"object": "error", "message": message, "type": "BadRequestError", "code": status},
                        status_code=status)


async def _answer(request, chat: bool):
    body = await request.json()
    if body.get("model") != MODEL:
        return _error(f"The model `{body.get('model')}` does not exist.", 404)
    prompt = " ".join(m["content"] for m in body["messages"]) if chat else body["prompt"]
    n, used = int(body.get("max_tokens") or 16), len(prompt.split())
    if used + n > MAX_LEN:
        return _error(f"This model's maximum context length is {MAX_LEN} tokens.")
    words = [f" w{i}" for i in range(n)]
    usage = {"prompt_tokens": used, "completion_tokens": n, "total_tokens": used + n}
    kind = "chat.completion" if chat else "text_completion"

    def choice(text: str, finish: str | None) -> dict:
        if chat:
            key = "delta" if body.get("stream") else "message"
            return {"index": 0, key: {"role": "assistant", "content": text}, "finish_reason": finish}
        return {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}

    if not body.get("stream"):
        return JSONResponse({"id": "cmpl-1", "object": kind, "created": int(time.time()), "model": MODEL,
                             "choices": [choice("".join(words), "length")], "usage": usage})

    def events():
        for i, w in enumerate(words):
            chunk = {"id": "cmpl-1", "object": kind + ".chunk", "model": MODEL,
                     "choices": [choice(w, "length" if i == n - 1 else None)]}
            yield f"data: {json.dumps(chunk)}\n\n"
        if (body.get("stream_options") or {}).get("include_usage"):
            yield f"data: {json.dumps({'id': 'cmpl-1', 'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def completions(request):
    return await _answer(request, chat=False)


async def chat_completions(request):
    return await _answer(request, chat=True)


async def models(request):
    return JSONResponse({"object": "list", "data": [
        {"id": MODEL, "object": "model", "created": 1700000000, "owned_by": "vllm", "root": ROOT,
         "parent": None, "max_model_len": MAX_LEN}]})


async def health(request):
    return PlainTextResponse("")


async def metrics(request):
    return PlainTextResponse("vllm:num_requests_running 0\n")


app = Starlette(routes=[
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/models", models), Route("/health", health), Route("/metrics", metrics)])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
