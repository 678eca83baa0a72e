"""Per-request token choice and incremental detokenization for the batching engine.

Requests in one batch carry different parameters (greedy or sampled, temperature,
top-k/top-p/typical-p, penalties, seed), so the engine runs one forward pass for the
whole batch and then lets each request's `TokenChooser` pick its token from its own
row of logits, with its own seeded generator: a request's output does not depend on
which other requests shared its batch. The semantics follow TGI's NextTokenChooser:
any warper (temperature, top_k, top_p, typical_p) switches sampling on, and a sampled
request without a seed gets a random one that is reported back in `details.seed`.

`IncrementalDecoder` turns token ids into text pieces for streaming the way TGI does
(prefix/read offsets), so multi-byte characters split over several byte-level tokens
are emitted only when complete; it is `tokenizers.decoders.DecodeStream`, measured
against the former Python offsets loop by bench/bench_engine.py.
"""
from __future__ import annotations

import dataclasses
import secrets

import torch
from tokenizers.decoders import DecodeStream


@dataclasses.dataclass
class SamplingParams:
    """Validated generation parameters of one request (see protocol.py)."""

    max_new_tokens: int
    do_sample: bool = False
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    typical_p: float | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    stop: list[str] = dataclasses.field(default_factory=list)
    top_n_tokens: int = 0
    decoder_input_details: bool = False
    ignore_eos: bool = False   # generate max_new_tokens whatever the model says (load tests, as vLLM's)

    @property
    def sampling(self) -> bool:
        warpers = (
            (self.temperature is not None and self.temperature != 1.0)
            or self.top_k is not None
            or (self.top_p is not None and self.top_p < 1.0)
            or self.typical_p is not None
        )
        return self.do_sample or bool(warpers)


class TokenChooser:
    """Applies one request's penalties and warpers to its logits row and picks a token."""

    def __init__(self, params: SamplingParams, prompt_ids: list[int], vocab_size: int):
        self.p = params
        self.seed: int | None = None
        self.generator: torch.Generator | None = None
        if params.sampling:
            self.seed = params.seed if params.seed is not None else secrets.randbits(63)
            self.generator = torch.Generator().manual_seed(self.seed)
        p = params
        greedy = self.generator is None and not p.top_n_tokens and not p.frequency_penalty
        # plain greedy: no warpers, penalties or top-n; the engine picks these in one batched op
        self.plain = greedy and p.repetition_penalty in (None, 1.0)
        # greedy with a repetition penalty and nothing else: `choose_penalised` picks these together
        self.penalised = greedy and not self.plain
        self.counts = torch.bincount(torch.tensor(prompt_ids, dtype=torch.long), minlength=vocab_size)

    def _process(self, logits: torch.Tensor) -> torch.Tensor:
        p = self.p
        seen = self.counts[: logits.shape[-1]] > 0
        if p.repetition_penalty is not None and p.repetition_penalty != 1.0 and seen.any():
            s = logits[seen]
            logits[seen] = torch.where(s < 0, s * p.repetition_penalty, s / p.repetition_penalty)
        if p.frequency_penalty:
            logits = logits - p.frequency_penalty * self.counts[: logits.shape[-1]].to(logits.dtype)
        if p.temperature is not None and p.temperature != 1.0:
            logits = logits / p.temperature
        if p.top_k is not None and p.top_k < logits.shape[-1]:
            kth = torch.topk(logits, p.top_k).values[-1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if p.top_p is not None and p.top_p < 1.0:
            sorted_logits, idx = torch.sort(logits, descending=True)
            cum = torch.softmax(sorted_logits, -1).cumsum(-1)
            drop = cum - torch.softmax(sorted_logits, -1) >= p.top_p  # keep the token crossing top_p
            logits = logits.masked_fill(torch.zeros_like(drop).scatter(0, idx, drop), float("-inf"))
        if p.typical_p is not None:
            logp = torch.log_softmax(logits, -1)
            probs = logp.exp()
            ent = -(torch.nan_to_num(probs * logp)).sum()
            shift = (-logp - ent).abs()
            order = torch.argsort(shift)
            cum = probs[order].cumsum(-1)
            last = int((cum < p.typical_p).sum())
            drop = torch.ones_like(logits, dtype=torch.bool)
            drop[order[: last + 1]] = False
            logits = logits.masked_fill(drop, float("-inf"))
        return logits

    def choose(self, logits: torch.Tensor) -> tuple[int, float, list[tuple[int, float]]]:
        """Return (token id, its logprob, top-n (id, logprob) pairs) for one logits row."""
        logits = self._process(logits.float().clone())
        logprobs = torch.log_softmax(logits, -1)
        if self.generator is not None:
            token = int(torch.multinomial(logprobs.exp(), 1, generator=self.generator))
        else:
            token = int(torch.argmax(logits))
        top: list[tuple[int, float]] = []
        if self.p.top_n_tokens:
            vals, ids = torch.topk(logprobs, min(self.p.top_n_tokens, logprobs.shape[-1]))
            top = [(int(i), float(v)) for i, v in zip(ids, vals)]
        self.counts[token] += 1
        return token, float(logprobs[token]), top


def choose_penalised(choosers: list[TokenChooser], logits: torch.Tensor) -> list[tuple[int, float]]:
    """(token, logprob) of `choose` for each of `choosers` (all `penalised`) on its row of
    `logits`, in a few batched ops: the same elementwise penalty (grouped by penalty value, the
    scalar ops `choose` runs), the same argmax of the penalised row and log_softmax of it."""
    vocab = logits.shape[-1]
    out = logits.float().clone()
    seen = torch.stack([c.counts[:vocab] for c in choosers]) > 0
    for rp in {c.p.repetition_penalty for c in choosers}:
        rows = torch.tensor([c.p.repetition_penalty == rp for c in choosers])[:, None]
        penalised = torch.where(out < 0, out * rp, out / rp)
        out = torch.where(seen & rows, penalised, out)
    best = out.argmax(-1)
    logprobs = torch.log_softmax(out, -1).gather(1, best[:, None])[:, 0]
    picks = list(zip(best.tolist(), logprobs.tolist()))
    for c, (token, _) in zip(choosers, picks):
        c.counts[token] += 1
    return picks


class IncrementalDecoder:
    """Streams the text of generated tokens, holding back incomplete characters.

    The work is `tokenizers.decoders.DecodeStream` (the same prefix/read-offset scheme
    TGI uses, in Rust); special tokens bypass it and come back as their token string.
    """

    def __init__(self, tokenizer, special_ids: set[int]):
        self.tok = tokenizer
        self.backend = tokenizer.backend_tokenizer
        self.stream = DecodeStream(skip_special_tokens=False)
        self.special = special_ids
        self.ids: list[int] = []

    def step(self, token_id: int) -> tuple[str, bool]:
        """Add one token; return (text piece, is_special)."""
        if token_id in self.special:
            return self.tok.convert_ids_to_tokens(token_id), True
        self.ids.append(token_id)
        return self.stream.step(self.backend, token_id) or "", False

    def text(self) -> str:
        return self.tok.decode(self.ids, skip_special_tokens=True)
