"""TGI's OpenAI-style routes: `/v1/chat/completions`, `/v1/completions`, `/v1/models`.

Chat renders the conversation with the model's own chat template
(`<|role|>\\n...<|end|>\\n`, then `<|assistant|>\\n`) and stops at `<|end|>` or EOS.
Streams are server-sent `chat.completion.chunk` / `text_completion` objects closed by
`data:[DONE]` (`serve.protocol.SSE_DONE`), as TGI sends them (the 0.7.0 `text-generation` client raises on that
closing line; stop reading at the chunk whose `finish_reason` is set). Like TGI, a
`temperature` of 0 (or none) means greedy decoding, and features lmforge does not
implement (tools, response_format, n > 1) are refused with a 422 rather than ignored.

Completions follow OpenAI's legacy schema as far as scoring needs it (lm-evaluation-harness's
`local-completions` model computes log-likelihoods this way): `prompt` may be token ids,
`logprobs: N` returns `{tokens, token_logprobs, top_logprobs, text_offset}` with the N
likeliest tokens per position, and `echo` prepends the prompt, with each prompt token's
logprob given the ones before it (the first is null) from the same prefill that generates.
"""
from __future__ import annotations

import asyncio
import time
import uuid

from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from lmforge.serve.requests import VERSION, Pending, ServerState, event_stream, observe, read_body
from lmforge.serve.http import JSON, ApiError
from lmforge.serve.oai_types import ChatRequest, CompletionRequest, validate
from lmforge.serve.events import Candidate, Finish, Token
from lmforge.serve.protocol import (SSE_DONE, TokenTexts, _get, fit_tokens, invalid, require_object, sampling_params,
                                    sse)


def _finish_reason(reason: str) -> str:
    return "length" if reason == "length" else "stop"


def _common(state: ServerState, kind: str) -> dict:
    return {"id": f"{'chatcmpl' if kind.startswith('chat') else 'cmpl'}-{uuid.uuid4().hex[:24]}",
            "object": kind, "created": int(time.time()), "model": state.model_id,
            "system_fingerprint": f"{VERSION}-lmforge"}


def _params(body: dict, state: ServerState, *, chat: bool = True):
    """Map OpenAI request fields onto TGI generate parameters (validated there); for completions
    `logprobs` is the number of likeliest tokens to list, and `echo` scores the prompt too."""
    for key in ("tools", "response_format", "grammar"):
        if body.get(key) is not None:
            raise invalid(f"`{key}` is not supported by lmforge serve")
    n = _get(body, "n", "int", "")
    if n not in (None, 1):
        raise invalid("`n` must be 1: lmforge serve returns one choice")
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    temperature = _get(body, "temperature", "number", "")
    if temperature is not None and temperature < 0:
        raise invalid("`temperature` must be >= 0")
    max_tokens = _get(body, "max_tokens", "int", "")
    max_completion = _get(body, "max_completion_tokens", "int", "")  # OpenAI's newer name
    if None not in (max_tokens, max_completion) and max_tokens != max_completion:
        raise invalid("`max_tokens` and `max_completion_tokens` differ: give one")
    p = {
        "max_new_tokens": max_completion if max_completion is not None else max_tokens,
        "temperature": temperature or None,
        "do_sample": bool(temperature),
        "top_p": _get(body, "top_p", "number", ""),
        "seed": _get(body, "seed", "int", ""),
        "stop": stop,
        "frequency_penalty": _get(body, "frequency_penalty", "number", ""),
        "repetition_penalty": _get(body, "repetition_penalty", "number", ""),
        "top_n_tokens": _get(body, "top_logprobs", "int", "") if body.get("logprobs") else None,
    }
    _get(body, "stream", "bool", "")
    if chat:
        _get(body, "logprobs", "bool", "")
    else:
        p["top_n_tokens"] = n = _get(body, "logprobs", "int", "")
        if n is not None and not 0 <= n <= state.limits.max_top_n_tokens:
            raise invalid(f"`logprobs` must be >= 0 and <= {state.limits.max_top_n_tokens}. Given: {n}")
        p["decoder_input_details"] = bool(_get(body, "echo", "bool", "")) and p["top_n_tokens"] is not None
        if body.get("echo") and body.get("stream"):
            raise invalid("`echo` is not supported when streaming")
    params, _ = sampling_params({k: v for k, v in p.items() if v is not None}, state.limits, where="")
    return params


def _messages(body: dict) -> list[dict]:
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise invalid("`messages` must be a non-empty list")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise invalid(f"`messages[{i}]` must be an object with a string `role`")
        content = m.get("content")
        if isinstance(content, list):  # [{"type": "text", "text": ...}]
            if not all(isinstance(c, dict) and c.get("type") == "text" and isinstance(c.get("text"), str)
                       for c in content):
                raise invalid(f"`messages[{i}].content`: only text chunks are supported")
            content = "".join(c["text"] for c in content)
        if content is None and m.get("tool_calls"):
            raise invalid("tool calls are not supported by lmforge serve")
        if not isinstance(content, str):
            raise invalid(f"`messages[{i}].content` must be a string or a list of text chunks")
        out.append({"role": m["role"], "content": content})
    return out


def _chat_logprob(token: Token, top: list[Candidate], texts: TokenTexts) -> dict:
    """One entry of a chat choice's `logprobs.content`."""
    return {"token": token.text, "logprob": token.logprob,
            "top_logprobs": [{"token": texts.text(c.id), "logprob": c.logprob} for c in top]}


async def chat_completions(request: Request):
    state: ServerState = request.app.state.lmforge
    t0 = time.perf_counter()
    body = require_object(await read_body(request, state))
    validate(ChatRequest, body)  # the whole OpenAI shape, before anything runs
    messages = _messages(body)
    params = _params(body, state)
    try:
        prompt = state.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as e:  # template errors: unknown roles, bad ordering, no template
        raise invalid(f"chat template failed: {e}") from None
    ids = fit_tokens(await state.encode_async(prompt, special=False), params, None, state.limits)
    validated = time.perf_counter()
    want_lp = bool(body.get("logprobs"))
    pending = Pending(state, ids, params, stream=bool(body.get("stream")))
    head = _common(state, "chat.completion.chunk" if body.get("stream") else "chat.completion")
    if body.get("stream"):
        usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(ev):
            c = {**head, "choices": [{
                "index": 0, "delta": {"role": "assistant", "content": "" if ev.token.special else ev.token.text,
                                      "tool_calls": None},
                "logprobs": {"content": [_chat_logprob(ev.token, ev.top, state.texts)]} if want_lp else None,
                "finish_reason": _finish_reason(ev.finish.reason) if ev.finish else None}], "usage": None}
            if ev.finish and usage:  # OpenAI sends usage in an extra chunk; one chunk keeps SSE simple
                c["usage"] = _usage(ev.finish)
            return c

        return event_stream(state, pending, chunk, t0, validated, done=True, openai=True)
    try:
        f = await pending.result()
    finally:
        pending.close()
    observe(state, f, t0, validated, params)
    lp = None
    if want_lp:
        lp = {"content": [_chat_logprob(t, top, state.texts) for t, top in zip(f.tokens, f.top)]}
    return JSON({**head, "choices": [{
        "index": 0, "message": {"role": "assistant", "content": f.text},
        "logprobs": lp, "finish_reason": _finish_reason(f.reason)}], "usage": _usage(f)})


def _usage(f: Finish) -> dict:
    return {"prompt_tokens": f.input_length, "completion_tokens": f.generated_tokens,
            "total_tokens": f.input_length + f.generated_tokens}


def _prompts(body: dict, state: ServerState) -> list[tuple[str, list[int] | None]]:
    """(text, token ids or None) of each prompt: a string, token ids, or a list of either."""
    prompts = body.get("prompt")
    if isinstance(prompts, str) or (isinstance(prompts, list) and prompts and isinstance(prompts[0], int)):
        prompts = [prompts]
    bad = invalid("`prompt` must be a non-empty string, a list of token ids, or a non-empty list of either")
    if not isinstance(prompts, list) or not prompts:
        raise bad
    out = []
    for p in prompts:
        if isinstance(p, str) and p:
            out.append((p, None))
        elif isinstance(p, list) and p and all(isinstance(t, int) and not isinstance(t, bool) for t in p):
            if not all(0 <= t < state.engine.vocab_size for t in p):
                raise invalid(f"`prompt` token ids must be in [0, {state.engine.vocab_size})")
            out.append((state.tokenizer.decode(p), p))
        else:
            raise bad
    if len({ids is None for _, ids in out}) > 1:
        raise invalid("`prompt` mixes strings and token ids")
    if len(out) > state.limits.max_batch_size:
        raise invalid(f"`prompt` holds at most {state.limits.max_batch_size} prompts. Given: {len(out)}")
    return out


def _completion_logprobs(f: Finish, echo: bool, offset: int, texts: TokenTexts) -> dict:
    """OpenAI's completion `logprobs` object for one choice (prompt tokens first when echoed)."""
    rows = [(texts.text(t.id), t.logprob, None if t.logprob is None else {texts.text(c.id): c.logprob for c in t.top})
            for t in (f.prompt if echo else [])]
    rows += [(t.text, t.logprob, {texts.text(c.id): c.logprob for c in top}) for t, top in zip(f.tokens, f.top)]
    offsets = []
    for text, _, _ in rows:
        offsets.append(offset)
        offset += len(text)
    return {"tokens": [r[0] for r in rows], "token_logprobs": [r[1] for r in rows],
            "top_logprobs": [r[2] for r in rows], "text_offset": offsets}


async def completions(request: Request):
    state: ServerState = request.app.state.lmforge
    t0 = time.perf_counter()
    body = require_object(await read_body(request, state))
    validate(CompletionRequest, body)
    prompts = _prompts(body, state)
    if body.get("suffix") is not None:
        raise invalid("`suffix` is not supported by lmforge serve")
    all_params, all_ids = [], []
    for text, ids in prompts:
        params = _params(body, state, chat=False)
        all_ids.append(fit_tokens(ids or await state.encode_async(text), params, None, state.limits))
        all_params.append(params)
    validated = time.perf_counter()
    pendings: list[Pending] = []
    try:
        for ids, params in zip(all_ids, all_params):
            pendings.append(Pending(state, ids, params, stream=bool(body.get("stream"))))
    except ApiError:
        for p in pendings:
            p.close()
        raise
    head = _common(state, "text_completion")
    if body.get("stream"):
        return StreamingResponse(_merged_stream(state, pendings, head, t0, validated),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    try:
        results = await asyncio.gather(*(p.result() for p in pendings))
    finally:
        for p in pendings:
            p.close()
    for f, params in zip(results, all_params):
        observe(state, f, t0, validated, params)
    echo = bool(body.get("echo"))
    want_lp = body.get("logprobs") is not None
    usage = {k: sum(_usage(f)[k] for f in results) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    return JSON({**head, "choices": [
        {"index": i, "text": (text if echo else "") + f.text,
         "logprobs": _completion_logprobs(f, echo, 0 if echo else len(text), state.texts) if want_lp else None,
         "finish_reason": _finish_reason(f.reason)}
        for i, ((text, _), f) in enumerate(zip(prompts, results))], "usage": usage})


async def _merged_stream(state: ServerState, pendings: list[Pending], head: dict, t0: float, validated: float):
    """Interleave the token streams of several prompts as `text_completion` chunks."""
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(i: int, p: Pending):
        try:
            async for ev in p.events():
                await queue.put((i, ev))
        except ApiError as e:
            await queue.put((i, e))

    tasks = [asyncio.create_task(pump(i, p)) for i, p in enumerate(pendings)]
    left = len(pendings)
    try:
        while left:
            i, ev = await queue.get()
            if isinstance(ev, ApiError):
                left -= 1
                yield sse(ev.body(openai=True))
                continue
            text = "" if ev.token.special else ev.token.text
            reason = _finish_reason(ev.finish.reason) if ev.finish else None  # OpenAI: null until the end
            yield sse({**head, "choices": [{"index": i, "text": text, "logprobs": None, "finish_reason": reason}]})
            if ev.finish:
                left -= 1
                observe(state, ev.finish, t0, validated, pendings[i].params)
        yield SSE_DONE
    finally:
        for t in tasks:
            t.cancel()
        for p in pendings:
            p.close()


async def models(request: Request):
    """OpenAI's list shape (as vLLM answers), not TGI's single object: `openai` clients read `data`."""
    state: ServerState = request.app.state.lmforge
    return JSON({"object": "list", "data": [{"id": state.model_id, "object": "model",
                                                     "created": int(state.started), "owned_by": "lmforge"}]})


def routes() -> list[Route]:
    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
    ]
