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
  ``{"error": {"message", "type"}}``, into one ``UpstreamError`` with its status.

Huggingface_hub's ``AsyncInferenceClient`` was tried and left: with ``HF_HUB_OFFLINE=1``
(how the pipeline runs) it refuses every request, localhost included, and it cannot
ask a TGI stream for ``input_length`` or a chat stream for usage, which the log needs.
"""
from __future__ import annotations

import json
from typing import AsyncIterator

import httpx

from lmforge.gateway import openai_compat

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


class UpstreamClient:
    """TGI's generate/stream and OpenAI chat against either kind of upstream."""

    def __init__(self, base_url: str, timeout: float = 60, headers: dict | None = None):
        self.base_url = base_url.rstrip("/")
        self.kind: str | None = None
        self.model_id: str | None = None
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout)

    async def close(self) -> None:
        await self._http.aclose()

    async def _get_json(self, path: str) -> tuple[int, object]:
        try:
            resp = await self._http.get(path)
            return resp.status_code, resp.json() if resp.status_code == 200 else None
        except (httpx.HTTPError, json.JSONDecodeError) as e:
            raise UpstreamUnavailable(f"{self.base_url}{path}: {type(e).__name__}: {e}") from e

    async def info(self) -> dict:
        """Model id and version from TGI's ``/info`` or, failing that, OpenAI's ``/v1/models``."""
        status, info = await self._get_json("/info")
        if status == 200 and isinstance(info, dict) and info.get("model_id"):
            self.kind = TGI
            return {**info, "upstream_kind": TGI,
                    "model_version": f"{info['model_id']}@{info.get('model_sha') or 'unknown'}"}
        status, models = await self._get_json("/v1/models")
        data = models.get("data") if status == 200 and isinstance(models, dict) else None
        if not data or not isinstance(data[0], dict) or not data[0].get("id"):
            raise UpstreamUnavailable(f"{self.base_url} answers neither /info nor /v1/models")
        self.kind, model = OPENAI, data[0]
        self.model_id = model["id"]
        version = model.get("root") or model.get("created") or "unknown"
        return {"model_id": model["id"], "model_sha": None, "upstream_kind": OPENAI,
                "max_model_len": model.get("max_model_len"), "model_version": f"{model['id']}@{version}"}

    async def _post(self, path: str, body: dict) -> dict:
        try:
            resp = await self._http.post(path, json=body)
            payload = resp.json()
        except json.JSONDecodeError as e:
            raise UpstreamUnavailable(f"{self.base_url}{path} answered {resp.status_code} without JSON") from e
        if resp.status_code != 200:
            raise UpstreamError.from_reply(resp.status_code, payload)
        return payload

    async def _sse(self, path: str, body: dict) -> AsyncIterator[dict]:
        """POST ``body`` and yield each SSE ``data:`` JSON payload until ``[DONE]``."""
        async with self._http.stream("POST", path, json=body) as resp:
            if resp.status_code != 200:
                raw = await resp.aread()
                try:
                    payload = json.loads(raw)
                except json.JSONDecodeError as e:
                    raise UpstreamUnavailable(f"{path} answered {resp.status_code} without JSON") from e
                raise UpstreamError.from_reply(resp.status_code, payload)
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[len("data:"):].strip()
                if data == "[DONE]":
                    return
                payload = json.loads(data)
                if "error" in payload and "token" not in payload and "choices" not in payload:
                    raise UpstreamError.from_reply(422 if payload.get("error_type") == "validation" else 500,
                                                   payload)
                yield payload

    async def generate(self, body: dict) -> dict:
        """TGI ``/generate`` body in, TGI ``GenerateResponse`` JSON out (details always on)."""
        if self.kind == OPENAI:
            params = body.get("parameters") or {}
            out = await self._post("/v1/completions", openai_compat.completion_request(body, self.model_id, stream=False))
            return openai_compat.generate_response(out, params)
        out = await self._post("/generate", body)
        if not isinstance(out, dict) or not isinstance(out.get("details"), dict):
            raise UpstreamUnavailable(f"{self.base_url}/generate answered without details")
        return out

    async def stream_generate(self, body: dict) -> AsyncIterator[dict]:
        """TGI ``StreamResponse`` events, the last one with ``details`` (and ``input_length``)."""
        if self.kind == OPENAI:
            chunks = self._sse("/v1/completions", openai_compat.completion_request(body, self.model_id, stream=True))
            async for event in openai_compat.stream_events(chunks, body.get("parameters") or {}):
                yield event
            return
        async for event in self._sse("/generate_stream", body):
            yield event

    async def chat(self, body: dict) -> dict:
        return await self._post("/v1/chat/completions", {**body, "stream": False})

    async def stream_chat(self, body: dict) -> AsyncIterator[dict]:
        """Chat chunks up to ``[DONE]``, asking for the usage chunk the log needs."""
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        async for chunk in self._sse("/v1/chat/completions", body):
            yield chunk
