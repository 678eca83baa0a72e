"""What the engine hands back for a request: token ids, logprobs and text pieces, as plain dataclasses.

The engine generates; it does not know the wire formats. TGI's GenerateResponse and
StreamResponse (protocol.py) and the OpenAI completion and chat objects (openai.py) are
shaped from these by the route modules, so a reply format can change without touching the
batching loop, and the engine's output can be tested without HTTP.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Candidate:
    """One of the likeliest tokens at a position (TGI's top_tokens, OpenAI's top_logprobs)."""

    id: int
    logprob: float


@dataclasses.dataclass
class Token:
    """A generated token: its id, logprob, the text it adds to the output and whether it is special."""

    id: int
    logprob: float
    text: str
    special: bool = False


@dataclasses.dataclass
class PromptToken:
    """A prompt token scored by the prefill: logprob given the tokens before it (None for the first)."""

    id: int
    logprob: float | None
    top: list[Candidate] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Timings:
    """perf_counter stamps of one request, for TGI's per-request metrics."""

    queued_at: float
    started_at: float
    first_token_at: float
    finished_at: float


@dataclasses.dataclass
class Finish:
    """How a request ended and everything it generated (TGI's Details / StreamDetails)."""

    reason: str  # "length" | "eos_token" | "stop_sequence"
    text: str  # the generated text, special tokens skipped
    tokens: list[Token]
    top: list[list[Candidate]]  # per generated token; empty lists without top_n_tokens
    prompt: list[PromptToken]  # filled only with decoder_input_details
    seed: int | None
    input_length: int
    timings: Timings

    @property
    def generated_tokens(self) -> int:
        return len(self.tokens)


@dataclasses.dataclass
class TokenEvent:
    """One generated token of a request; the last one carries `finish`."""

    index: int
    token: Token
    top: list[Candidate]
    finish: Finish | None = None


@dataclasses.dataclass
class ErrorEvent:
    """The request failed; `status` and `error_type` are TGI's (424 "generation")."""

    status: int
    error_type: str
    message: str
