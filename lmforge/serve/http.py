"""HTTP plumbing shared by the two live servers, `lmforge serve` and `lmforge gateway`.

Both speak TGI's contract, so both answer every error with TGI's body
`{"error": ..., "error_type": ...}` (on OpenAI's `/v1/*` routes OpenAI's
`{"error": {"message", "type", "param", "code"}}`, which the `openai` client reads),
and both must turn any hostile body into a 4xx rather than a 5xx or a swollen
process. That is done once, here:

* `ApiError` is the one error reply; `exception_handlers` maps it, unknown routes,
  decode failures the input caused (UnicodeError, RecursionError) and anything
  unexpected to that JSON shape (only the last one is a 500);
* `read_body` enforces the byte limit while the body streams in: a `Content-Length`
  over the limit is refused before a byte is read, and a chunked body is counted as it
  arrives and refused once it passes the limit, so a 150 MB upload never sits in memory;
* `parse_json` accepts only what TGI's serde_json accepts: no `NaN`/`Infinity` literals
  or numbers that overflow to infinity (a NaN temperature poisons the sampler), no lone
  UTF-16 surrogates (they cannot be encoded to UTF-8, so the tokenizer, the request log
  and the reply would all fail on them), no nesting past Python's recursion limit.

* `JSON` / `dumps` write only finite JSON numbers: a masked token's log-probability is
  `-inf` (NaN under an extreme penalty), which `json.dumps` refuses (a 500) or writes as
  `-Infinity` in a stream (not JSON). Infinite values are clamped to +-9999.0, the
  floor OpenAI reports for such tokens, and NaN becomes null.

It imports no app factory, so serve's app and routes, the gateway and its proxy can all
import it without cycles.
"""
from __future__ import annotations

import json
import logging
import math
import re
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

log = logging.getLogger(__name__)


LOGPROB_FLOOR = 9999.0  # what OpenAI reports for a token the model cannot produce (-9999.0)
_OPENAI_TYPES = {"validation": "invalid_request_error", "not_found": "not_found_error",
                 "authentication": "authentication_error", "overloaded": "rate_limit_error",
                 "safety": "invalid_request_error", "method_not_allowed": "invalid_request_error",
                 "generation": "invalid_request_error"}


def _finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced (see the module docstring); no recursion limit."""
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj if math.isfinite(obj) else math.copysign(LOGPROB_FLOOR, obj)
    if not isinstance(obj, (dict, list, tuple)):
        return obj
    root = [obj]
    stack = [(root, 0)]
    while stack:
        parent, key = stack.pop()
        o = parent[key]
        if isinstance(o, float) and not math.isfinite(o):
            parent[key] = None if math.isnan(o) else math.copysign(LOGPROB_FLOOR, o)
        elif isinstance(o, dict):
            o = parent[key] = dict(o)
            stack.extend((o, k) for k in o)
        elif isinstance(o, (list, tuple)):
            o = parent[key] = list(o)
            stack.extend((o, i) for i in range(len(o)))
    return root[0]


def dumps(obj: Any) -> str:
    """Compact JSON with finite numbers only."""
    try:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:
        return json.dumps(_finite(obj), ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class JSON(JSONResponse):
    """Starlette's JSONResponse, but non-finite floats are clamped instead of failing the reply."""

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8", "backslashreplace")


def is_openai(path: str) -> bool:
    return path.startswith("/v1/")


class ApiError(Exception):
    """An error reply in TGI's shape `{"error": message, "error_type": error_type}`, or with
    ``openai`` OpenAI's `{"error": {"message", "type", "param", "code"}}`."""

    def __init__(self, status: int, message: str, error_type: str = "validation", param: str | None = None):
        # an echoed lone surrogate would make the error body itself unencodable
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
        super().__init__(message)
        self.status, self.message, self.error_type = status, message, error_type
        if param is None and (m := re.search(r"`([^`]{1,80})`", message)):
            param = m.group(1)
        self.param = param

    def body(self, openai: bool = False) -> dict:
        if openai:
            return {"error": {"message": self.message, "type": _OPENAI_TYPES.get(self.error_type, self.error_type),
                              "param": self.param, "code": self.error_type}}
        return {"error": self.message, "error_type": self.error_type}

    def response(self, headers: dict | None = None, openai: bool = False) -> JSONResponse:
        return JSON(self.body(openai), status_code=self.status, headers=headers)


def invalid(msg: str) -> ApiError:
    """TGI's 422 for bad input, with TGI's message prefix."""
    return ApiError(422, f"Input validation error: {msg}")


# ---- reading the body ---------------------------------------------------------------
async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `max_bytes`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"request body of {declared} bytes exceeds the limit of {max_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"request body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _check_strings(obj: Any) -> None:
    """Raise UnicodeEncodeError if any key or string holds a lone surrogate (no recursion)."""
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, str):
            o.encode("utf-8")
        elif isinstance(o, dict):
            stack.extend(o)
            stack.extend(o.values())
        elif isinstance(o, list):
            stack.extend(o)


check_strings = _check_strings  # the gateway checks its upstream's replies the same way


def parse_json(raw: bytes) -> Any:
    """Strict JSON (see the module docstring); anything else is a 422."""
    try:
        obj = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
        _check_strings(obj)
    except RecursionError:
        raise invalid("request body is not valid JSON: nested too deeply") from None
    except UnicodeEncodeError as e:
        raise invalid(f"request body is not valid JSON: lone surrogate U+{ord(e.object[e.start]):04X} "
                      "is not Unicode text") from None
    except ValueError as e:  # UnicodeDecodeError included
        raise invalid(f"request body is not valid JSON: {e}") from None
    return obj


async def read_json(request: Request, max_bytes: int) -> Any:
    return parse_json(await read_body(request, max_bytes))


# ---- exception handlers ---------------------------------------------------------------
async def api_error(request: Request, exc: ApiError) -> JSONResponse:
    return exc.response(openai=is_openai(request.url.path))


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http")
    return ApiError(exc.status_code, str(exc.detail), kind).response(
        getattr(exc, "headers", None), openai=is_openai(request.url.path))


async def input_error(request: Request, exc: Exception) -> JSONResponse:
    """Text that cannot be encoded or decoded, or structure too deep to walk: the input's fault."""
    log.warning("%s on %s: %s", type(exc).__name__, request.url.path, str(exc)[:200])
    return ApiError(422, f"Input validation error: the request could not be decoded: {str(exc)[:200]}").response(
        openai=is_openai(request.url.path))


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s", request.url.path)
    return ApiError(500, f"Internal server error: {type(exc).__name__}", "internal").response(
        openai=is_openai(request.url.path))


def exception_handlers(on_api_error=api_error) -> dict:
    """Starlette `exception_handlers`: every error a JSON body in TGI's shape."""
    return {ApiError: on_api_error, HTTPException: http_error, UnicodeError: input_error,
            RecursionError: input_error, Exception: internal_error}
