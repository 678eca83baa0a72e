"""The gateway's side of the wire: the official ``text-generation`` AsyncClient.

The gateway talks to any TGI endpoint (the real one on a GPU cluster or
``lmforge serve``) through ``text_generation.AsyncClient``, so what it relies on
is exactly what TGI's own client relies on. Non-streaming chat goes through the
client's own ``chat()``. The subclass reuses the client's request types
(``Parameters``, ``Request``, ``ChatRequest``), response types and
``parse_error`` everywhere, and changes only the transport where 0.7.0 gets in
the way of a gateway:

* it opens a new HTTP session (and TCP connection) for every call: ~2.6 ms per
  request measured here, half the gateway's latency budget, so ``generate`` and
  the chat transport reuse one kept-alive session;
* ``StreamDetails`` in 0.7.0 has no ``input_length`` (TGI sends it), so the input
  token count of a streamed generation would be dropped;
* its chat stream raises on TGI's closing ``data: [DONE]`` line, does not check the
  HTTP status, and cannot ask for ``stream_options.include_usage``.
"""
from __future__ import annotations

import json
from typing import Any, AsyncIterator

import aiohttp
from pydantic import ValidationError as PydanticValidationError
from text_generation import AsyncClient
from text_generation.errors import ValidationError as TGIValidationError
from text_generation.errors import parse_error
from text_generation.types import (ChatComplete, ChatRequest, Message, Parameters, Request, Response,
                                   StreamResponse)

# Errors of a request that fails the client's own checks: the caller's fault (422).
CLIENT_VALIDATION_ERRORS = (PydanticValidationError, TGIValidationError, TypeError, ValueError)

# Names of ``AsyncClient.generate``'s keywords for TGI's ``parameters`` keys.
_RENAMES = {"stop": "stop_sequences"}
_GENERATE_KEYS = {"do_sample", "max_new_tokens", "best_of", "repetition_penalty", "frequency_penalty",
                  "return_full_text", "seed", "stop", "temperature", "top_k", "top_p", "truncate",
                  "typical_p", "watermark", "decoder_input_details", "top_n_tokens", "grammar"}
_CHAT_KEYS = {"repetition_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
              "max_tokens", "n", "presence_penalty", "seed", "temperature", "top_p", "tools",
              "tool_choice"}


class UpstreamUnavailable(RuntimeError):
    """The upstream server could not be reached or answered garbage (502)."""


def generate_kwargs(parameters: dict) -> dict:
    """TGI ``parameters`` (as sent to ``/generate``) → ``AsyncClient.generate`` keywords.

    Unknown keys are rejected like TGI rejects them; ``details`` is always on
    upstream (the log needs token counts) and trimmed by the gateway if not asked.
    """
    if not isinstance(parameters, dict):
        raise TypeError("`parameters` must be an object")
    unknown = set(parameters) - _GENERATE_KEYS - {"details", "adapter_id"}
    if unknown:
        raise TypeError(f"unknown parameter(s): {sorted(unknown)}")
    return {_RENAMES.get(k, k): v for k, v in parameters.items()
            if k in _GENERATE_KEYS and v is not None}


def chat_kwargs(body: dict) -> dict:
    unknown = set(body) - _CHAT_KEYS - {"messages", "stream", "model", "stream_options"}
    if unknown:
        raise TypeError(f"unknown field(s): {sorted(unknown)}")
    return {k: v for k, v in body.items() if k in _CHAT_KEYS and v is not None}


def build_request(prompt: str, kwargs: dict, stream: bool) -> Request:
    """The client's own ``Request`` for ``generate`` keywords (raises on invalid values)."""
    kw = dict(kwargs)
    stop = kw.pop("stop_sequences", None)
    return Request(inputs=prompt, stream=stream, parameters=Parameters(details=True, stop=stop or [], **kw))


class UpstreamClient(AsyncClient):
    """``text_generation.AsyncClient`` plus log-complete streaming and ``/info``."""

    def __init__(self, base_url: str, timeout: int = 60, headers: dict | None = None):
        super().__init__(base_url.rstrip("/"), headers=headers, timeout=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self.headers, timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def info(self) -> dict:
        """TGI's ``GET /info`` (model id and sha name the model version in the log)."""
        try:
            async with self._sess().get(f"{self.base_url}/info") as resp:
                if resp.status != 200:
                    raise UpstreamUnavailable(f"{self.base_url}/info answered {resp.status}")
                return await resp.json()
        except aiohttp.ClientError as e:
            raise UpstreamUnavailable(f"{self.base_url}/info: {e}") from e

    async def generate(self, prompt: str, **kwargs: Any) -> Response:
        """``AsyncClient.generate`` (same keywords, types and errors) on the kept-alive session."""
        return await self.send_generate(build_request(prompt, kwargs, stream=False))

    async def send_generate(self, request: Request) -> Response:
        """Send an already validated ``Request`` (the gateway validates before it logs)."""
        async with self._sess().post(self.base_url, json=request.model_dump()) as resp:
            payload = await resp.json(content_type=None)
            if resp.status != 200:
                raise parse_error(resp.status, payload)
            return Response(**payload[0])

    async def _chat_single_response(self, request: ChatRequest) -> ChatComplete:
        async with self._sess().post(f"{self.base_url}/v1/chat/completions",
                                     json=request.model_dump()) as resp:
            payload = await resp.json(content_type=None)
            if resp.status != 200:
                raise parse_error(resp.status, payload)
            return ChatComplete(**payload)

    async def _sse(self, url: str, body: dict) -> AsyncIterator[dict]:
        """POST ``body`` and yield each SSE ``data:`` JSON payload until ``[DONE]``."""
        async with self._sess().post(url, json=body) as resp:
            if resp.status != 200:
                try:
                    payload = await resp.json(content_type=None)
                except (json.JSONDecodeError, aiohttp.ContentTypeError) as e:
                    raise UpstreamUnavailable(f"{url} answered {resp.status} without JSON") from e
                raise parse_error(resp.status, payload)
            async for raw in resp.content:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                data = line[len("data:"):].strip()
                if data == "[DONE]":
                    return
                payload = json.loads(data)
                if "error" in payload and "token" not in payload and "choices" not in payload:
                    raise parse_error(resp.status, payload)
                yield payload

    async def stream_generate(self, request: Request) -> AsyncIterator[tuple[StreamResponse, dict]]:
        """Like ``generate_stream`` but also yields each raw event (``input_length``)."""
        async for payload in self._sse(self.base_url, request.model_dump()):
            yield StreamResponse(**payload), payload

    async def stream_chat(self, messages: list[dict], **kwargs: Any) -> AsyncIterator[dict]:
        """Chat stream that asks for usage, stops at ``[DONE]`` and checks the status.

        Yields the raw chunks: 0.7.0's ``ChatCompletionChunk`` requires a
        ``tool_calls`` key that TGI leaves out of plain text deltas.
        """
        request = ChatRequest(model="tgi", messages=[Message(**m) for m in messages],
                              stream=True, **kwargs)
        body = request.model_dump(exclude_none=True)
        body["stream_options"] = {"include_usage": True}
        async for payload in self._sse(f"{self.base_url}/v1/chat/completions", body):
            yield payload
