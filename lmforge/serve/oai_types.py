"""OpenAI's request shapes as pydantic models, checked before anything runs or goes upstream.

`lmforge serve` and `lmforge gateway` both accept OpenAI's chat and completion
requests. Checking them field by field in each route let valid input through that
crashed later (content as a list of parts reached the safety classifier as a list;
a `stream_options` that is not an object failed after the stream had started) and
let the gateway accept what serve refuses. One set of models, here, used by both,
decides what a valid request is; a failure is one 422 naming the field
(`messages.0.content`), in the caller's dialect (http.ApiError).

The models follow OpenAI's API reference for the fields lmforge understands;
unknown top-level fields are refused (a typo would silently change nothing), and
only text content parts are accepted (no images or audio on a text model).
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from lmforge.serve.http import ApiError

Number = Union[StrictInt, StrictFloat]
Stop = Union[StrictStr, Annotated[list[StrictStr], Field(max_length=64)], None]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Model):
    type: Literal["text"]
    text: StrictStr


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")  # tool_call_id, refusal, audio... kept, not used

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Union[StrictStr, Annotated[list[TextPart], Field(max_length=1024)], None] = None
    name: StrictStr | None = None
    tool_calls: list | None = None

    def text(self) -> str:
        """The message's text, whichever form its content came in."""
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class StreamOptions(_Model):
    include_usage: StrictBool | None = None
    continuous_usage_stats: StrictBool | None = None


class _Common(_Model):
    model: StrictStr | None = None
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: StrictInt | None = None
    temperature: Number | None = None
    top_p: Number | None = None
    n: StrictInt | None = None
    stop: Stop = None
    seed: StrictInt | None = None
    user: StrictStr | None = None
    frequency_penalty: Number | None = None
    presence_penalty: Number | None = None
    repetition_penalty: Number | None = None  # vLLM's and TGI's extra field
    logit_bias: dict[StrictStr, Number] | None = None


class ChatRequest(_Common):
    messages: Annotated[list[Message], Field(min_length=1)]
    max_completion_tokens: StrictInt | None = None
    logprobs: StrictBool | None = None
    top_logprobs: StrictInt | None = None
    tools: list | None = None
    tool_choice: Union[StrictStr, dict, None] = None
    response_format: dict | None = None
    parallel_tool_calls: StrictBool | None = None


class CompletionRequest(_Common):
    prompt: Union[StrictStr, list[StrictStr], list[StrictInt], list[list[StrictInt]]]
    logprobs: StrictInt | None = None
    echo: StrictBool | None = None
    suffix: StrictStr | None = None
    best_of: StrictInt | None = None


_TAGS = {"str", "int", "float", "bool", "dict", "list", "none"}


def _where(loc: tuple) -> str:
    """``messages.0.content`` from pydantic's location, without its union-member tags."""
    return ".".join(str(x) for x in loc if not (isinstance(x, str) and (x in _TAGS or "[" in x or "-" in x)))


def validate(model: type[_Model], body: dict) -> _Model:
    """``body`` as ``model``, or one 422 naming the first field at fault."""
    try:
        req = model.model_validate(body)
    except ValidationError as e:
        err = e.errors(include_url=False, include_input=False)[0]
        where = _where(err["loc"]) or "request body"
        raise ApiError(422, f"Input validation error: `{where}`: {err['msg']}"[:500]) from None
    if req.stream_options is not None and not req.stream:
        raise ApiError(422, "Input validation error: `stream_options` is only allowed when `stream` is true")
    return req
