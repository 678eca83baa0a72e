"""TGI's generate API on top of an OpenAI-only upstream's ``/v1/completions``.

The gateway speaks TGI's ``/generate`` and ``/generate_stream`` to its users and logs
TGI's token counts and finish reasons. vLLM, SGLang and llama.cpp (TGI's successors)
offer only OpenAI's API, so for them the upstream client sends the TGI request as a
completion and answers in TGI's shapes, built here as pure functions:

* parameters: ``max_new_tokens`` -> ``max_tokens``, ``stop`` -> ``stop``; greedy unless
  TGI would sample (``do_sample`` or a sampling parameter), as ``temperature: 0``;
  ``top_k`` and ``repetition_penalty`` go as vLLM's extra fields;
* replies: ``usage`` gives ``generated_tokens`` and ``input_length``; OpenAI's ``stop``
  is TGI's ``stop_sequence`` when stop sequences were given, else ``eos_token``. Token
  ids are not in an OpenAI reply, so translated tokens carry id -1.
"""
from __future__ import annotations

from typing import AsyncIterator

_SAMPLING = ("temperature", "top_p", "top_k", "typical_p")


def completion_request(body: dict, model: str | None, stream: bool) -> dict:
    """TGI ``{"inputs", "parameters"}`` -> an OpenAI ``/v1/completions`` body."""
    p = body.get("parameters") or {}
    sample = bool(p.get("do_sample")) or any(p.get(k) is not None for k in _SAMPLING)
    req = {"model": model, "prompt": body["inputs"], "stream": stream,
           "temperature": p.get("temperature", 1.0) if sample else 0.0}
    for tgi, oai in (("max_new_tokens", "max_tokens"), ("stop", "stop"), ("seed", "seed"),
                     ("top_p", "top_p"), ("top_k", "top_k"), ("frequency_penalty", "frequency_penalty"),
                     ("repetition_penalty", "repetition_penalty"), ("top_n_tokens", "logprobs")):
        if p.get(tgi) is not None:
            req[oai] = p[tgi]
    if stream:
        req["stream_options"] = {"include_usage": True}
    return req


def finish_reason(reason: str | None, params: dict) -> str:
    if reason == "length":
        return "length"
    return "stop_sequence" if reason == "stop" and params.get("stop") else "eos_token"


def _details(reason: str | None, usage: dict, params: dict, tokens: int) -> dict:
    return {"finish_reason": finish_reason(reason, params),
            "generated_tokens": usage.get("completion_tokens") or tokens,
            "seed": params.get("seed"), "input_length": usage.get("prompt_tokens")}


def generate_response(out: dict, params: dict) -> dict:
    """An OpenAI completion -> TGI's ``GenerateResponse`` with details."""
    choice = (out.get("choices") or [{}])[0]
    details = _details(choice.get("finish_reason"), out.get("usage") or {}, params, 0)
    return {"generated_text": choice.get("text") or "",
            "details": {**details, "prefill": [], "tokens": [], "top_tokens": [], "best_of_sequences": None}}


def _event(index: int, text: str) -> dict:
    return {"index": index, "token": {"id": -1, "text": text, "logprob": None, "special": False},
            "top_tokens": None, "generated_text": None, "details": None}


async def stream_events(chunks: AsyncIterator[dict], params: dict) -> AsyncIterator[dict]:
    """OpenAI completion chunks -> TGI stream events; the last carries text and details.

    Each event is held back one chunk, so the last token's event can carry the finish
    reason and the usage that arrive in later chunks.
    """
    pending, parts, reason, usage = None, [], None, {}
    async for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            reason = choice.get("finish_reason") or reason
            text = choice.get("text") or ""
            if text:
                if pending is not None:
                    yield pending
                pending = _event(len(parts), text)
                parts.append(text)
    final = pending or _event(0, "")
    final.update(generated_text="".join(parts), details=_details(reason, usage, params, len(parts)))
    yield final
