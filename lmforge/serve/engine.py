"""Continuous batching of generation requests over one transformers model on CPU.

One engine thread owns the model. At every step it admits waiting requests while the
batch has room (`max_batch_size`), prefills the newcomers together (left-padded), adds
their rows to the running batch's KV cache (kv_cache.BatchCache, which also drops rows
that finished or were cancelled), then runs one decode step for every running row at
once. Concurrent requests share forward passes and a new request never waits for a
running batch to finish, as in TGI's router. Decode steps of Llama-architecture models
take fast_decode's lean step (the model's arithmetic with less Python per token; one row
bitwise its forward, batches through oneDNN's prepacked products unless
`batch_kernels="torch"`). When
idle, the first arrival waits up to `batch_wait_ms` for company, unless it comes right
after the engine went idle (a client sending its next request: no company follows). Each
row picks its token with its own parameters and seeded generator (sampling.py; text
pieces come from tokenizers' DecodeStream), and every token goes to the request's `emit`
callback as ids, logprobs and text (events.py); the route modules shape TGI's and
OpenAI's replies from those.

Why a hand-written loop and not transformers 5's continuous batching (`generate_batch`):
on CPU it measured slower for this workload and has no streaming (docs/LOG.md, issue 9).
A failure ends only its request (TGI "generation" error, 424): a failing row is evicted
alone; a batched pass that raises is retried row by row.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from typing import Callable

import torch

from lmforge.serve.events import Candidate, ErrorEvent, Finish, PromptToken, Timings, Token, TokenEvent
from lmforge.serve.fast_decode import LlamaDecodeStep
from lmforge.serve.kv_cache import BatchCache
from lmforge.serve.metrics import ServerMetrics
from lmforge.serve.sampling import IncrementalDecoder, SamplingParams, TokenChooser, choose_penalised
from lmforge.serve.weights import BATCH_KERNELS, lay_out_for_decode

log = logging.getLogger(__name__)

CLOSED_LOOP_S = 0.010  # an arrival this soon after the engine went idle is not held for company


@dataclasses.dataclass
class Generation:
    """One request as the engine sees it; `emit` receives TokenEvent/ErrorEvent."""

    input_ids: list[int]
    params: SamplingParams
    emit: Callable[[TokenEvent | ErrorEvent], None]
    stream: bool = True  # False: only the final event is emitted (no per-token wake-ups)
    cancelled: bool = False
    queued_at: float = dataclasses.field(default_factory=time.perf_counter)


class _Row:
    """A request being decoded: how it chooses and decodes tokens, and what it generated so far."""

    def __init__(self, gen: Generation, chooser: TokenChooser, decoder: IncrementalDecoder, started: float):
        self.gen = gen
        self.chooser = chooser
        self.decoder = decoder
        self.started = started
        self.pending = -1  # the last chosen token: the next decode step's input
        self.tokens: list[Token] = []
        self.top: list[list[Candidate]] = []
        self.prompt: list[PromptToken] = []
        self.text = ""  # generated text so far, kept only to find stop sequences
        self.first_token_at = 0.0
        self.done = False


class Engine:
    """Owns the model; `submit` requests from any thread, `start`/`stop` the loop.

    The model's linear weights are re-laid out in place for decoding (weights.py): the same
    values, so a caller that keeps using the model gets the same results. `step="forward"`
    keeps the model's own forward for every pass (bench/bench_engine.py's baseline);
    `batch_kernels` picks the lean step's products for batches (weights.Product).
    """

    def __init__(self, model, tokenizer, *, max_batch_size: int = 8, batch_wait_ms: float = 5.0,
                 eos_ids: set[int] | None = None, metrics: ServerMetrics | None = None,
                 step: str = "lean", batch_kernels: str = "onednn"):
        if step not in ("lean", "forward"):
            raise ValueError(f"step must be 'lean' or 'forward', not {step!r}")
        if batch_kernels not in BATCH_KERNELS:
            raise ValueError(f"batch_kernels must be one of {BATCH_KERNELS}, not {batch_kernels!r}")
        self.model = lay_out_for_decode(model.eval())
        self.tok = tokenizer
        self.max_batch_size = max_batch_size
        self.batch_wait = batch_wait_ms / 1000.0
        self.metrics = metrics or ServerMetrics()
        self.eos_ids = set(eos_ids or ()) | ({tokenizer.eos_token_id} - {None})
        self.special_ids = set(tokenizer.all_special_ids)
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (tokenizer.eos_token_id or 0)
        self.vocab_size = model.get_output_embeddings().weight.shape[0]
        self._queue: collections.deque[Generation] = collections.deque()
        self._cv = threading.Condition()
        self._rows: list[_Row] = []
        self._kv = BatchCache(model.config)
        kernels = batch_kernels if max_batch_size > 1 else "torch"   # one row at a time: no packed copy
        self._lean = (LlamaDecodeStep.build(self.model, kernels, max_batch_size)
                      if step == "lean" else None)   # None: decode steps use the model's forward
        self._stop = False
        self._idle_since = float("-inf")  # when the last running row finished
        self._thread: threading.Thread | None = None

    # ---- public -----------------------------------------------------------------
    def start(self) -> "Engine":
        self._thread = threading.Thread(target=self._loop, name="lmforge-engine", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop

    def submit(self, gen: Generation) -> None:
        with self._cv:
            self._queue.append(gen)
            self.metrics.queue_size.set(len(self._queue))
            self._cv.notify_all()

    # ---- loop -------------------------------------------------------------------
    def _loop(self) -> None:
        with torch.inference_mode():
            while True:
                new = self._take()
                if new is None:
                    break
                if new:
                    self._admit(new)
                if self._rows:
                    try:
                        self._decode()
                    except Exception as e:  # last resort: rows are isolated in _decode already
                        log.exception("decode failed")
                        self._fail([r.gen for r in self._rows], e)
                        self._reset()
                if not self._rows:
                    self._idle_since = time.perf_counter()
        self._fail([r.gen for r in self._rows] + list(self._queue), RuntimeError("server shutting down"))

    def _closed_loop(self) -> bool:
        """The engine went idle moments ago: this arrival is a client's next request after its
        last reply (one client in a loop), which no company follows; holding it only adds latency."""
        return time.perf_counter() - self._idle_since < CLOSED_LOOP_S

    def _full(self) -> bool:
        return len(self._queue) >= self.max_batch_size or self._stop

    def _take(self) -> list[Generation] | None:
        with self._cv:
            if not self._rows:
                while not self._queue and not self._stop:
                    self._cv.wait(0.5)
                if self.batch_wait > 0 and not self._stop and not self._closed_loop():
                    self._cv.wait_for(self._full, self.batch_wait)
            if self._stop:
                return None
            room = self.max_batch_size - len(self._rows)
            taken: list[Generation] = []
            while self._queue and len(taken) < room:
                g = self._queue.popleft()
                if not g.cancelled:
                    taken.append(g)
            self.metrics.queue_size.set(len(self._queue))
            return taken

    def _admit(self, gens: list[Generation]) -> None:
        """Prefill newcomers together or, if that fails, one by one: only a request that fails alone ends."""
        try:
            self._prefill(gens)
        except Exception as e:
            if len(gens) == 1:
                log.exception("prefill failed")
                return self._fail(gens, e)
            # safe to retry: nothing is emitted before the forward pass, and _advance_all never raises
            log.warning("prefill of %d requests failed (%s); prefilling them one by one", len(gens), e)
            for g in gens:
                self._admit([g])

    def _fail(self, gens: list[Generation], err: Exception) -> None:
        for g in gens:
            self._emit(g, ErrorEvent(424, "generation", f"Request failed during generation: {err}"))

    @staticmethod
    def _emit(gen: Generation, event: TokenEvent | ErrorEvent) -> None:
        try:
            gen.emit(event)
        except Exception:  # the HTTP side went away; the row is dropped as cancelled
            gen.cancelled = True

    # ---- model steps ------------------------------------------------------------
    def _forward(self, method: str, fn=None, **kw):
        """One timed, counted pass of `fn` (default: the model's forward with its cache)."""
        t0 = time.perf_counter()
        self.metrics.counters.inc("tgi_batch_inference_count", method=method)
        out = fn(**kw) if fn is not None else self.model(use_cache=True, **kw)
        self.metrics.batch_forward_duration.labels(method).observe(time.perf_counter() - t0)
        self.metrics.counters.inc("tgi_batch_inference_success", method=method)
        return out

    def _last_logits(self, method: str, ids, positions, mask, cache) -> torch.Tensor:
        """Each row's last-position logits: the lean step (fast_decode), else the model's forward."""
        if self._lean is not None:
            return self._forward(method, self._lean, ids=ids, positions=positions, mask=mask, cache=cache)
        return self._forward(method, input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                             logits_to_keep=1).logits[:, -1]

    def _prefill(self, gens: list[Generation]) -> None:
        t0 = time.perf_counter()
        lens = [len(g.input_ids) for g in gens]
        width = max(lens)
        ids = torch.full((len(gens), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(gens), width), dtype=torch.long)
        for i, g in enumerate(gens):
            ids[i, width - lens[i]:] = torch.tensor(g.input_ids)
            mask[i, width - lens[i]:] = 1
        newcomers = self._kv.like(self._kv.new_cache(), mask)
        scored = any(g.params.decoder_input_details for g in gens)
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        pad_mask = mask if newcomers.padded else None
        if scored:   # every prompt position's logits: the model's forward
            out = self._forward("prefill", input_ids=ids, attention_mask=pad_mask, position_ids=positions,
                                cache=newcomers.cache, logits_to_keep=0)
            last = out.logits[:, -1]
        else:
            last = self._last_logits("prefill", ids, positions, pad_mask, newcomers.cache)
        self.metrics.batch_next_size.observe(len(gens))
        rows = []
        for i, g in enumerate(gens):
            row = _Row(g, TokenChooser(g.params, g.input_ids, self.vocab_size),
                       IncrementalDecoder(self.tok, self.special_ids), t0)
            if g.params.decoder_input_details:
                row.prompt = _prompt_tokens(g.input_ids, out.logits[i, width - lens[i]:], g.params.top_n_tokens)
            rows.append(row)
        self._advance_all(rows, last)
        keep = [i for i, r in enumerate(rows) if not r.done]
        if keep:
            if self._rows:
                self.metrics.counters.inc("tgi_batch_concat")
            newcomers.select(keep)
            self._kv.extend(newcomers)
            self._rows = self._rows + [rows[i] for i in keep]
            self._gauges()
        self.metrics.batch_inference_duration.labels("prefill").observe(time.perf_counter() - t0)

    def _decode(self) -> None:
        self._filter()
        if not self._rows:
            return
        t0 = time.perf_counter()
        try:
            self._step(self._rows, self._kv)
        except Exception as e:
            if len(self._rows) == 1:
                raise
            log.warning("decode of %d rows failed (%s); stepping them one by one", len(self._rows), e)
            self._step_each()
        self._filter()
        self.metrics.batch_inference_duration.labels("decode").observe(time.perf_counter() - t0)

    def _step(self, rows: list[_Row], kv: BatchCache) -> None:
        """One decode step of `rows` over their batch cache `kv`, which grows by one column."""
        mask, positions = kv.grow()
        try:
            logits = self._last_logits("decode", torch.tensor([[r.pending] for r in rows]), positions, mask,
                                       kv.cache)
        except Exception:
            kv.rollback()
            raise
        self.metrics.decode_batch_size.observe(len(rows))
        self._advance_all(rows, logits)

    def _step_each(self) -> None:
        """After a failed batched step, step every row alone: only a row that fails by itself ends."""
        rows = self._rows
        singles = self._kv.split()
        self._reset()
        for row, kv in zip(rows, singles):
            try:
                self._step([row], kv)
            except Exception as e:
                log.exception("decode failed for one row")
                self._fail([row.gen], e)
            else:
                self._kv.extend(kv)
                self._rows.append(row)
        self._gauges()

    def _advance_all(self, rows: list[_Row], logits: torch.Tensor) -> None:
        """Next token for every row; plain greedy rows share one batched argmax/log_softmax, and
        greedy rows with only a repetition penalty share `choose_penalised`."""
        logits = logits.float()
        picked: dict[int, tuple[int, float]] = {}
        plain = [i for i, r in enumerate(rows) if r.chooser.plain]
        if plain:
            logp = torch.log_softmax(logits if len(plain) == len(rows) else logits[torch.tensor(plain)], -1)
            best = logp.argmax(-1)
            chosen = logp.gather(1, best[:, None])[:, 0]
            picked = dict(zip(plain, zip(best.tolist(), chosen.tolist())))
            for i, token in zip(plain, best.tolist()):
                rows[i].chooser.counts[token] += 1
        penalised = [i for i, r in enumerate(rows) if r.chooser.penalised]
        if len(penalised) > 1:   # alone, `choose` below is as fast
            try:
                picked.update(zip(penalised, choose_penalised([rows[i].chooser for i in penalised],
                                                              logits[torch.tensor(penalised)])))
            except Exception:   # a row's own parameters: each row's own `choose` below finds which
                log.warning("batched penalised choice failed; choosing row by row")
        for i, row in enumerate(rows):
            try:
                if i in picked:
                    self._advance(row, *picked[i], [])
                else:
                    token, logprob, top = row.chooser.choose(logits[i])
                    self._advance(row, token, logprob, [Candidate(t, lp) for t, lp in top])
            except Exception as e:  # this row's own parameters or tokens: evict it alone
                log.exception("token choice failed for one row")
                row.done = True
                self._fail([row.gen], e)

    def _advance(self, row: _Row, token: int, logprob: float, top: list[Candidate]) -> None:
        """Record the row's chosen token, emit it, and decide whether the row is done."""
        text, special = row.decoder.step(token)
        now = time.perf_counter()
        row.first_token_at = row.first_token_at or now
        tok = Token(id=token, logprob=logprob, text=text, special=special)
        row.tokens.append(tok)
        row.top.append(top)
        row.pending = token
        reason = self._finish_reason(row, tok)
        finish = None
        if reason is not None:
            row.done = True
            timings = Timings(queued_at=row.gen.queued_at, started_at=row.started,
                              first_token_at=row.first_token_at, finished_at=now)
            finish = Finish(reason=reason, text=row.decoder.text(), tokens=row.tokens, top=row.top,
                            prompt=row.prompt, seed=row.chooser.seed, input_length=len(row.gen.input_ids),
                            timings=timings)
        if row.gen.stream or finish is not None:
            self._emit(row.gen, TokenEvent(index=len(row.tokens) - 1, token=tok, top=top, finish=finish))

    def _finish_reason(self, row: _Row, tok: Token) -> str | None:
        p = row.gen.params
        if tok.id in self.eos_ids and not p.ignore_eos:
            return "eos_token"
        if tok.text and p.stop:
            row.text += tok.text
            if any(s in row.text[-(len(s) + len(tok.text)):] for s in p.stop):
                return "stop_sequence"
        if len(row.tokens) >= p.max_new_tokens:
            return "length"
        return None

    # ---- batch bookkeeping ----------------------------------------------------------
    def _filter(self) -> None:
        keep = [i for i, r in enumerate(self._rows) if not r.done and not r.gen.cancelled]
        if len(keep) == len(self._rows):
            return
        self._kv.select(keep)
        self._rows = [self._rows[i] for i in keep]
        self._gauges()

    def _reset(self) -> None:
        self._rows = []
        self._kv.clear()
        self._gauges()

    def _gauges(self) -> None:
        self.metrics.batch_current_size.set(len(self._rows))
        self.metrics.batch_current_max_tokens.set(self._kv.slots)


def _prompt_tokens(ids: list[int], logits: torch.Tensor, top_n: int = 0) -> list[PromptToken]:
    """Each prompt token's logprob given the ones before it (the first has none), and the
    position's `top_n` likeliest tokens: TGI's prefill details, OpenAI's echoed logprobs."""
    logp = torch.log_softmax(logits.float(), -1)
    out = [PromptToken(id=ids[0], logprob=None)]
    for t in range(1, len(ids)):
        top = []
        if top_n:
            values, indices = logp[t - 1].topk(top_n)
            top = [Candidate(i, v) for i, v in zip(indices.tolist(), values.tolist())]
        out.append(PromptToken(id=ids[t], logprob=float(logp[t - 1, ids[t]]), top=top))
    return out
