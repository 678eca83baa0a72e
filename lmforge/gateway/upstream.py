"""The gateway's side of the wire: one kept-alive httpx client to a TGI or OpenAI-only upstream.

The gateway used to talk through the ``text-generation`` client (0.7.0), whose
``huggingface-hub<1.0`` pin held the whole stack back, and TGI itself is archived:
its successors (vLLM, SGLang, llama.cpp) speak only OpenAI's API. So this module
speaks plain HTTP, which is all either kind of upstream needs, and it:

* detects the upstream on first use: ``GET /info`` answering a ``model_id`` is TGI
  (or ``lmforge serve``), otherwise ``GET /v1/models`` is an OpenAI-only server; the
  model version in the log comes from whichever route it offers;
* sends TGI's ``/generate`` and ``/generate_stream`` as they are to TGI, and
  translates them to ``/v1/completions`` for an OpenAI-only upstream, answering in
  TGI's shapes either way (``openai_compat``), so the gateway's routes and log do
  not care which kind is behind them;
* passes ``/v1/chat/completions`` through to both, asking streams for usage;
* reuses one connection pool (a new TCP connection per call cost ~2.6 ms here);
* turns every non-200 reply, TGI's ``{"error", "error_type"}`` or OpenAI's
  ``{"error": {"message", "type"}}``, into one ``UpstreamError`` with its status;
* trusts nothing the upstream sends: a reply is read up to ``max_bytes`` (a stream's
  events each up to that size) and within one overall ``deadline`` per call (not per
  read: a trickling upstream cannot hold a request past it), and a reply of the wrong
  shape (a JSON list or number, no choices, ``{"details": {}}``, an SSE event whose data
  is a number or null, a lone surrogate in its text) is ``UpstreamUnavailable``: the
  gateway's 502, never the client's 4xx;
* remembers which model answered (``x-model-id``/``x-model-sha`` reply headers, sent by
  ``lmforge serve``), so the gateway re-reads ``/info`` when the upstream changes model.

Huggingface_hub's ``AsyncInferenceClient`` was tried and left: with ``HF_HUB_OFFLINE=1``
(how the pipeline runs) it refuses every request, localhost included, and it cannot
ask a TGI stream for ``input_length`` or a chat stream for usage, which the log needs.
"""
from __future__ import annotations

import asyncio
import json
from typing import AsyncIterator

import httpx

from lmforge.gateway import openai_compat
from lmforge.serve.http import check_strings

TGI, OPENAI = "tgi", "openai"
_ERROR_TYPES = {400: "validation", 422: "validation", 424: "generation", 429: "overloaded"}


class UpstreamUnavailable(RuntimeError):
    """The upstream server could not be reached or answered garbage (502)."""


class UpstreamError(RuntimeError):
    """The upstream answered an error: its HTTP status, message and TGI error type."""

    def __init__(self, status: int, message: str, error_type: str):
        super().__init__(message)
        self.status, self.message, self.error_type = status, message, error_type

    @classmethod
    def from_reply(cls, status: int, payload) -> "UpstreamError":
        err = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(err, dict):  # OpenAI: {"error": {"message", "type"}}
            message, kind = err.get("message"), None
        elif isinstance(err, str):  # TGI: {"error", "error_type"}
            message, kind = err, payload.get("error_type")
        else:  # vLLM's {"object": "error", "message", "type"} or anything else
            message = payload.get("message") if isinstance(payload, dict) else None
            kind = None
        return cls(status, str(message or payload)[:1000], kind or _ERROR_TYPES.get(status, "upstream"))


def _json(raw: bytes, where: str):
    """Upstream JSON, strictly: text that cannot be encoded (a lone surrogate) is the upstream's fault.
    Non-finite numbers are accepted (an upstream's -Infinity logprob) and clamped on the way out."""
    try:
        obj = json.loads(raw, parse_constant=float)
        check_strings(obj)
        return obj
    except (ValueError, RecursionError, UnicodeError) as e:  # all the upstream's fault
        raise UpstreamUnavailable(f"{where} answered what is not JSON text: {type(e).__name__}: "
                                  f"{str(e)[:200]}") from None


def _shape(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise UpstreamUnavailable(f"{where} answered a malformed reply: {what}")


class UpstreamClient:
    """TGI's generate/stream and OpenAI chat against either kind of upstream."""

    def __init__(self, base_url: str, timeout: float = 60, headers: dict | None = None,
                 max_bytes: int = 8_000_000):
        self.base_url = base_url.rstrip("/")
        self.kind: str | None = None
        self.model_id: str | None = None
        self.deadline_s, self.max_bytes = timeout, max_bytes
        self.served: tuple[str, str] | None = None  # (model id, sha) from the latest reply's headers
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout)

    async def close(self) -> None:
        await self._http.aclose()

    def _saw(self, resp: httpx.Response) -> None:
        mid, sha = resp.headers.get("x-model-id"), resp.headers.get("x-model-sha")
        if mid:
            self.served = (mid, sha or "unknown")

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self.deadline_s

    async def _within(self, aw, deadline: float, where: str):
        left = deadline - asyncio.get_running_loop().time()
        try:
            if left <= 0:
                raise asyncio.TimeoutError
            return await asyncio.wait_for(aw, left)
        except asyncio.TimeoutError:
            raise UpstreamUnavailable(f"{where} did not finish within the deadline of {self.deadline_s:g} s") \
                from None

    async def _read(self, resp: httpx.Response, deadline: float, where: str) -> bytes:
        """The whole body, refused once it passes ``max_bytes`` (never held past that)."""
        chunks, size, it = [], 0, resp.aiter_bytes().__aiter__()
        while True:
            try:
                chunk = await self._within(it.__anext__(), deadline, where)
            except StopAsyncIteration:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_bytes:
                raise UpstreamUnavailable(f"{where} answered more than {self.max_bytes} bytes; cut off")
            chunks.append(chunk)

    async def _lines(self, resp: httpx.Response, deadline: float, where: str) -> AsyncIterator[bytes]:
        """Lines of a stream, each up to ``max_bytes``, all within the deadline."""
        buf, it = b"", resp.aiter_bytes().__aiter__()
        while True:
            try:
                chunk = await self._within(it.__anext__(), deadline, where)
            except StopAsyncIteration:
                if buf:
                    yield buf
                return
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                yield line.rstrip(b"\r")
            if len(buf) > self.max_bytes:
                raise UpstreamUnavailable(f"{where} sent an event over {self.max_bytes} bytes; cut off")

    async def _get_json(self, path: str) -> tuple[int, object]:
        where = f"{self.base_url}{path}"
        deadline = self._deadline()
        try:
            async with self._http.stream("GET", path) as resp:
                self._saw(resp)
                raw = await self._read(resp, deadline, where)
                return resp.status_code, _json(raw, where) if resp.status_code == 200 else None
        except httpx.HTTPError as e:
            raise UpstreamUnavailable(f"{where}: {type(e).__name__}: {e}") from e

    async def info(self) -> dict:
        """Model id and version from TGI's ``/info`` or, failing that, OpenAI's ``/v1/models``."""
        status, info = await self._get_json("/info")
        if status == 200 and isinstance(info, dict) and isinstance(info.get("model_id"), str) and info["model_id"]:
            self.kind = TGI
            self.served = (info["model_id"], info.get("model_sha") or "unknown")
            return {**info, "upstream_kind": TGI,
                    "model_version": f"{info['model_id']}@{info.get('model_sha') or 'unknown'}"}
        status, models = await self._get_json("/v1/models")
        data = models.get("data") if status == 200 and isinstance(models, dict) else None
        if not data or not isinstance(data, list) or not isinstance(data[0], dict) \
                or not isinstance(data[0].get("id"), str):
            raise UpstreamUnavailable(f"{self.base_url} answers neither /info nor /v1/models")
        self.kind, model = OPENAI, data[0]
        self.model_id = model["id"]
        version = str(model.get("root") or model.get("created") or "unknown")[:200]
        return {"model_id": model["id"], "model_sha": None, "upstream_kind": OPENAI,
                "max_model_len": model.get("max_model_len"), "model_version": f"{model['id']}@{version}"}

    async def _post(self, path: str, body: dict) -> dict:
        where, deadline = f"{self.base_url}{path}", self._deadline()
        try:
            async with self._http.stream("POST", path, json=body) as resp:
                self._saw(resp)
                raw = await self._read(resp, deadline, where)
        except httpx.HTTPError as e:
            raise UpstreamUnavailable(f"{where}: {type(e).__name__}: {e}") from e
        try:
            payload = _json(raw, where)
        except UpstreamUnavailable:
            if resp.status_code == 200:
                raise
            raise UpstreamUnavailable(f"{where} answered {resp.status_code} without JSON") from None
        if resp.status_code != 200:
            raise UpstreamError.from_reply(resp.status_code, payload)
        _shape(isinstance(payload, dict), where, f"a JSON {type(payload).__name__}, not an object")
        return payload

    async def _sse(self, path: str, body: dict) -> AsyncIterator[dict]:
        """POST ``body`` and yield each SSE ``data:`` JSON object until ``[DONE]``."""
        where, deadline = f"{self.base_url}{path}", self._deadline()
        async with self._http.stream("POST", path, json=body) as resp:
            self._saw(resp)
            if resp.status_code != 200:
                raw = await self._read(resp, deadline, where)
                try:
                    payload = _json(raw, where)
                except UpstreamUnavailable:
                    raise UpstreamUnavailable(f"{path} answered {resp.status_code} without JSON") from None
                raise UpstreamError.from_reply(resp.status_code, payload)
            async for line in self._lines(resp, deadline, where):
                if not line.startswith(b"data:"):
                    continue
                data = line[len(b"data:"):].strip()
                if data == b"[DONE]":
                    return
                payload = _json(data, where)
                _shape(isinstance(payload, dict), where, f"an event whose data is {str(payload)[:40]!r}")
                if "error" in payload and "token" not in payload and "choices" not in payload:
                    raise UpstreamError.from_reply(422 if payload.get("error_type") == "validation" else 500,
                                                   payload)
                yield payload

    async def generate(self, body: dict) -> dict:
        """TGI ``/generate`` body in, TGI ``GenerateResponse`` JSON out (details always on)."""
        if self.kind == OPENAI:
            params = body.get("parameters") or {}
            out = await self._post("/v1/completions", openai_compat.completion_request(body, self.model_id, stream=False))
            check_choices(out, f"{self.base_url}/v1/completions", "text")
            return openai_compat.generate_response(out, params)
        out = await self._post("/generate", body)
        d = out.get("details")
        _shape(isinstance(d, dict) and isinstance(out.get("generated_text"), str)
               and isinstance(d.get("generated_tokens"), int) and isinstance(d.get("finish_reason"), str),
               f"{self.base_url}/generate", "no generated_text or details")
        return out

    async def stream_generate(self, body: dict) -> AsyncIterator[dict]:
        """TGI ``StreamResponse`` events, the last one with ``details`` (and ``input_length``)."""
        if self.kind == OPENAI:
            chunks = self._checked(self._sse("/v1/completions",
                                             openai_compat.completion_request(body, self.model_id, stream=True)))
            async for event in openai_compat.stream_events(chunks, body.get("parameters") or {}):
                yield event
            return
        async for event in self._sse("/generate_stream", body):
            d = event.get("details")
            _shape((d is None and isinstance(event.get("token"), dict))
                   or (isinstance(d, dict) and isinstance(event.get("generated_text"), str)),
                   f"{self.base_url}/generate_stream", "an event with neither a token nor final details")
            yield event

    async def chat(self, body: dict) -> dict:
        return await self._choices("/v1/chat/completions", body, "message")

    async def completion(self, body: dict) -> dict:
        return await self._choices("/v1/completions", body, "text")

    async def _choices(self, path: str, body: dict, field: str) -> dict:
        """One non-streaming OpenAI reply, its ``choices[*].field`` checked."""
        out = await self._post(path, {**body, "stream": False})
        check_choices(out, f"{self.base_url}{path}", field)
        return out

    async def _checked(self, chunks: AsyncIterator[dict]) -> AsyncIterator[dict]:
        async for chunk in chunks:
            choices = chunk.get("choices")
            _shape(isinstance(choices, list) and all(isinstance(c, dict) for c in choices)
                   and isinstance(chunk.get("usage"), (dict, type(None))),
                   f"{self.base_url}/v1/completions", "a chunk without a list of choices")
            yield chunk

    async def stream_completion(self, body: dict) -> AsyncIterator[dict]:
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        async for chunk in self._checked(self._sse("/v1/completions", body)):
            yield chunk

    async def stream_chat(self, body: dict) -> AsyncIterator[dict]:
        """Chat chunks up to ``[DONE]``, asking for the usage chunk the log needs."""
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        async for chunk in self._sse("/v1/chat/completions", body):
            choices = chunk.get("choices")
            _shape(isinstance(choices, list) and all(isinstance(c, dict) and isinstance(c.get("delta") or {}, dict)
                                                     for c in choices)
                   and isinstance(chunk.get("usage"), (dict, type(None))),
                   f"{self.base_url}/v1/chat/completions", "a chunk without a list of choices")
            yield chunk

    async def ready(self) -> bool:
        """The upstream's ``/health`` answers 200 within a few seconds."""
        try:
            return (await self._http.get("/health", timeout=min(5.0, self.deadline_s))).status_code == 200
        except httpx.HTTPError:
            return False


def check_choices(out: dict, where: str, field: str) -> None:
    """An OpenAI reply has a non-empty list of choices, the first with its ``message``/``text``."""
    choices = out.get("choices")
    _shape(isinstance(choices, list) and choices and isinstance(choices[0], dict), where, "no choices")
    c = choices[0]
    ok = isinstance(c.get("message"), dict) and isinstance(c["message"].get("content"), (str, type(None))) \
        if field == "message" else isinstance(c.get("text"), str)
    _shape(ok, where, f"a choice without its {field}")
    _shape(isinstance(out.get("usage"), (dict, type(None))), where, "usage that is not an object")
