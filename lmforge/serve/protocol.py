"""TGI's request validation and response shapes, as plain functions.

Everything a client sends is checked here before it reaches the engine (the JSON
itself, strictly, by http.parse_json), with TGI's own messages ("Input validation
error: `temperature` must be strictly positive") and TGI's error body `{"error": ...,
"error_type": ...}`: 422 `validation` for bad input of any kind (malformed JSON, wrong
types, non-finite or out-of-range values, too many tokens), 429 `overloaded`, 424
`generation`. Unknown keys are ignored, as TGI's serde does. The
response builders shape the engine's ids and logprobs (events.py) into TGI's
GenerateResponse / StreamResponse JSON (../shared/contracts/tgi-openapi.json).
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Callable

from lmforge.serve.events import Candidate, Finish, Token, TokenEvent
from lmforge.serve.http import dumps, invalid
from lmforge.serve.sampling import SamplingParams


MIN_TEMPERATURE = 1e-5  # vLLM's sampling epsilon


@dataclasses.dataclass
class Limits:
    """The launcher's limits (TGI flag names), reported by GET /info."""

    max_input_tokens: int
    max_total_tokens: int
    max_concurrent_requests: int = 32
    max_batch_size: int = 8
    max_stop_sequences: int = 4
    max_top_n_tokens: int = 5
    max_best_of: int = 1
    payload_limit: int = 2_000_000  # bytes of a request body (TGI's --payload-limit)


def _get(d: dict, key: str, kind: str, where: str) -> Any:
    """`d[key]` checked against `kind` (int, number, bool, str, strlist); None if absent/null."""
    v = d.get(key)
    if v is None:
        return None
    name = f"{where}{key}"
    ok = {
        "int": isinstance(v, int) and not isinstance(v, bool),
        "number": isinstance(v, (int, float)) and not isinstance(v, bool) and _finite(v),
        "bool": isinstance(v, bool),
        "str": isinstance(v, str),
        "strlist": isinstance(v, list) and all(isinstance(s, str) for s in v),
    }[kind]
    if not ok:
        want = {"int": "an integer", "number": "a number", "bool": "a boolean", "str": "a string",
                "strlist": "a list of strings"}[kind]
        raise invalid(f"`{name}` must be {want}, got {json.dumps(v)[:80]}")
    return float(v) if kind == "number" else v


def _finite(v: int | float) -> bool:
    try:
        return math.isfinite(v)
    except OverflowError:  # an int beyond float range
        return False


def require_object(body: Any, what: str = "request body") -> dict:
    if not isinstance(body, dict):
        raise invalid(f"{what} must be a JSON object")
    return body


@dataclasses.dataclass
class GenerateOptions:
    """Per-request choices that shape the reply rather than the generation."""

    inputs: str
    details: bool = True
    return_full_text: bool = False
    stream: bool = False


# TGI's checks of GenerateParameters, with its messages: key -> (kind, valid(value, limits), message)
_CHECKS: dict[str, tuple[str, Callable[[Any, Limits], bool], str]] = {
    "best_of": ("int", lambda v, lim: 0 < v <= lim.max_best_of,
                "`best_of` must be > 0 and <= {lim.max_best_of}. Given: {v}"),
    # below MIN_TEMPERATURE logits / temperature overflow to inf and sampling fails (a 424 once)
    "temperature": ("number", lambda v, lim: v >= MIN_TEMPERATURE,
                    "`temperature` must be strictly positive (at least {MIN_TEMPERATURE}; greedy: do_sample=false)"),
    "repetition_penalty": ("number", lambda v, lim: v > 0, "`repetition_penalty` must be strictly positive"),
    "frequency_penalty": ("number", lambda v, lim: -2.0 <= v <= 2.0, "`frequency_penalty` must be >= -2.0 and <= 2.0"),
    "top_p": ("number", lambda v, lim: 0.0 < v <= 1.0, "`top_p` must be > 0.0 and <= 1.0"),
    "typical_p": ("number", lambda v, lim: 0.0 < v < 1.0, "`typical_p` must be > 0.0 and < 1.0"),
    "top_k": ("int", lambda v, lim: v > 0, "`top_k` must be strictly positive"),
    "max_new_tokens": ("int", lambda v, lim: v > 0, "`max_new_tokens` must be strictly positive"),
    "seed": ("int", lambda v, lim: 0 <= v < 2**64, "`seed` must be a non-negative 64-bit integer"),
    "truncate": ("int", lambda v, lim: 0 < v <= lim.max_input_tokens,
                 "`truncate` must be strictly positive and less than {lim.max_input_tokens}. Given: {v}"),
    "top_n_tokens": ("int", lambda v, lim: 0 <= v <= lim.max_top_n_tokens,
                     "`top_n_tokens` must be >= 0 and <= {lim.max_top_n_tokens}. Given: {v}"),
}


def sampling_params(p: dict, limits: Limits, *, where: str = "parameters.") -> tuple[SamplingParams, int | None]:
    """Check TGI GenerateParameters; returns the params (max_new_tokens maybe 0 = default) and truncate."""
    v: dict[str, Any] = {}
    for key, (kind, ok, message) in _CHECKS.items():
        v[key] = _get(p, key, kind, where)
        if v[key] is not None and not ok(v[key], limits):
            raise invalid(message.format(v=v[key], lim=limits, MIN_TEMPERATURE=MIN_TEMPERATURE))
    stop = _get(p, "stop", "strlist", where) or []
    if len(stop) > limits.max_stop_sequences:
        raise invalid(f"`stop` supports up to {limits.max_stop_sequences} stop sequences. Given: {len(stop)}")
    if any(s == "" for s in stop):
        raise invalid("`stop` sequences cannot be empty")
    for flag in ("do_sample", "details", "decoder_input_details", "return_full_text", "watermark", "ignore_eos"):
        _get(p, flag, "bool", where)
    if p.get("watermark"):
        raise invalid("`watermark` is not supported by lmforge serve")
    if p.get("grammar") is not None:
        raise invalid("grammar is not supported by lmforge serve")
    if p.get("adapter_id") not in (None, "", "null"):
        raise invalid("`adapter_id` is not supported: lmforge serve serves one merged model")
    params = SamplingParams(
        max_new_tokens=v["max_new_tokens"] or 0,
        do_sample=bool(p.get("do_sample")),
        temperature=v["temperature"],
        top_k=v["top_k"],
        top_p=None if v["top_p"] == 1.0 else v["top_p"],
        typical_p=v["typical_p"],
        repetition_penalty=v["repetition_penalty"],
        frequency_penalty=v["frequency_penalty"] or None,
        seed=v["seed"],
        stop=stop,
        top_n_tokens=v["top_n_tokens"] or 0,
        decoder_input_details=bool(p.get("decoder_input_details")),
        ignore_eos=bool(p.get("ignore_eos")),
    )
    return params, v["truncate"]


def fit_tokens(ids: list[int], params: SamplingParams, truncate: int | None, limits: Limits) -> list[int]:
    """Apply `truncate` (keep the last tokens, as TGI does) and the input/total limits."""
    if truncate is not None and len(ids) > truncate:
        ids = ids[-truncate:]
    if not ids:
        raise invalid("`inputs` cannot be empty")
    if len(ids) > limits.max_input_tokens:
        raise invalid(f"`inputs` must have less than {limits.max_input_tokens} tokens. Given: {len(ids)}")
    if not params.max_new_tokens:
        params.max_new_tokens = limits.max_total_tokens - len(ids)
        if params.max_new_tokens <= 0:
            raise invalid(f"`inputs` tokens + `max_new_tokens` must be <= {limits.max_total_tokens}. "
                          f"Given: {len(ids)} `inputs` tokens and 1 `max_new_tokens`")
    if len(ids) + params.max_new_tokens > limits.max_total_tokens:
        raise invalid(f"`inputs` tokens + `max_new_tokens` must be <= {limits.max_total_tokens}. "
                      f"Given: {len(ids)} `inputs` tokens and {params.max_new_tokens} `max_new_tokens`")
    return ids


def parse_generate(body: Any, limits: Limits, *, stream: bool | None) -> tuple[GenerateOptions, SamplingParams, int | None]:
    """Check a GenerateRequest (or CompatGenerateRequest when `stream` is None)."""
    body = require_object(body)
    inputs = body.get("inputs")
    if not isinstance(inputs, str):
        raise invalid("`inputs` must be a string")
    if not inputs:
        raise invalid("`inputs` cannot be empty")
    p = body.get("parameters")
    if p is None:
        p = {}
    p = require_object(p, "`parameters`")
    if stream is None:
        s = _get(body, "stream", "bool", "")
        stream = bool(s)
    params, truncate = sampling_params(p, limits)
    if stream and params.decoder_input_details:
        raise invalid("`decoder_input_details` == true is not supported when streaming tokens")
    details = p.get("details")
    opts = GenerateOptions(inputs=inputs, details=True if details is None else details,
                           return_full_text=bool(p.get("return_full_text")), stream=stream)
    return opts, params, truncate


# ---- response shapes --------------------------------------------------------------
class TokenTexts:
    """Text and specialness of single token ids, as TGI writes them in top_tokens and prefill
    entries (the engine reports ids; a generated token carries its own streamed text piece)."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.special = set(tokenizer.all_special_ids)
        self._texts: dict[int, str] = {}

    def text(self, token_id: int) -> str:
        text = self._texts.get(token_id)
        if text is None:
            text = self._texts[token_id] = self.tok.decode([token_id])
        return text

    def candidate(self, c: Candidate) -> dict:
        return {"id": c.id, "text": self.text(c.id), "logprob": c.logprob, "special": c.id in self.special}


def token_json(t: Token) -> dict:
    """TGI's Token object."""
    return {"id": t.id, "text": t.text, "logprob": t.logprob, "special": t.special}


def details_json(f: Finish, params: SamplingParams, texts: TokenTexts) -> dict:
    return {
        "finish_reason": f.reason,
        "generated_tokens": f.generated_tokens,
        "seed": f.seed,
        "prefill": [{"id": t.id, "text": texts.text(t.id), "logprob": t.logprob} for t in f.prompt],
        "tokens": [token_json(t) for t in f.tokens],
        "top_tokens": [[texts.candidate(c) for c in top] for top in f.top] if params.top_n_tokens else [],
        "best_of_sequences": None,
    }


def generate_json(f: Finish, opts: GenerateOptions, params: SamplingParams, texts: TokenTexts) -> dict:
    text = (opts.inputs + f.text) if opts.return_full_text else f.text
    return {"generated_text": text, "details": details_json(f, params, texts) if opts.details else None}


def stream_json(ev: TokenEvent, opts: GenerateOptions, texts: TokenTexts) -> dict:
    out = {"index": ev.index, "token": token_json(ev.token), "top_tokens": [texts.candidate(c) for c in ev.top],
           "generated_text": None, "details": None}
    f = ev.finish
    if f is not None:
        out["generated_text"] = (opts.inputs + f.text) if opts.return_full_text else f.text
        if opts.details:
            out["details"] = {"finish_reason": f.reason, "generated_tokens": f.generated_tokens,
                              "seed": f.seed, "input_length": f.input_length}
    return out


def sse(obj: Any) -> bytes:
    """One server-sent event, as TGI writes it (`data:{json}` and a blank line); a string
    is sent as it is (an upstream's already-encoded event)."""
    data = obj if isinstance(obj, str) else dumps(obj)  # finite numbers only: -Infinity is not JSON
    return b"data:" + data.encode("utf-8", "backslashreplace") + b"\n\n"


SSE_DONE = sse("[DONE]")  # the end of an OpenAI-style stream, in the same spelling as every event
