"""Concurrent requests share forward passes, and batching does not change what greedy decoding says."""
from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
import torch

from lmforge.serve.engine import Engine, Generation
from lmforge.serve.events import ErrorEvent, TokenEvent
from lmforge.serve.sampling import SamplingParams, TokenChooser

PROMPTS = ["Hello world", "The quick brown fox jumps over", "A", "Python is a programming language that lets"]


def _engine(tiny_model, **kw):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    return tok, Engine(AutoModelForCausalLM.from_pretrained(tiny_model), tok, **kw).start()


def _submit(engine, tok, prompt, n, done: dict, key, first: threading.Event | None = None, **params):
    ev = threading.Event()

    def emit(e):
        if first is not None:
            first.set()
        if not isinstance(e, TokenEvent) or e.finish is not None:
            done[key] = e.finish if isinstance(e, TokenEvent) else e
            ev.set()

    engine.submit(Generation(tok(prompt)["input_ids"], SamplingParams(max_new_tokens=n, **params), emit))
    return ev


def test_batched_and_joined_rows_match_sequential(tiny_model):
    tok, engine = _engine(tiny_model, max_batch_size=8, batch_wait_ms=0)
    try:
        seq = {}
        for i, p in enumerate(PROMPTS):
            _submit(engine, tok, p, 16, seq, i).wait(30)
        # staggered arrivals join the running batch (continuous batching) at different lengths
        joined, events = {}, []
        running = threading.Event()
        long = _submit(engine, tok, "Hello", 60, joined, "long", running)
        assert running.wait(30)  # the long request is decoding; the others must join it
        for i, p in enumerate(PROMPTS):
            events.append(_submit(engine, tok, p, 16, joined, i))
            time.sleep(0.005)
        for e in [long, *events]:
            assert e.wait(30)
        assert engine.metrics.counters.get("tgi_batch_concat") >= 1
        for i in range(len(PROMPTS)):
            assert [t.id for t in joined[i].tokens] == [t.id for t in seq[i].tokens], PROMPTS[i]
    finally:
        engine.stop()


def test_concurrent_http_requests_are_batched(tiny_model, server_factory):
    # an idle engine holds the first request up to 2 s for company; max_batch_size=4 ends the wait
    srv = server_factory(tiny_model, max_batch_size=4, batch_wait_ms=2000, max_concurrent_requests=8)
    try:
        async def burst():
            async with httpx.AsyncClient(base_url=srv.url, timeout=60) as client:
                return await asyncio.gather(*(client.post("/generate", json={
                    "inputs": p, "parameters": {"max_new_tokens": 8, "details": True}}) for p in PROMPTS))

        results = [r.json() for r in asyncio.run(burst())]
        assert all(r["details"]["generated_tokens"] >= 1 for r in results)
        assert srv.metric("tgi_batch_next_size_count") == 1  # one prefill for all four
        assert srv.metric("tgi_batch_next_size_sum") == 4
        steps = srv.metric("lmforge_batch_decode_size_count")
        assert srv.metric('lmforge_batch_decode_size_bucket{le="1.0"}') < steps  # decode steps with > 1 row
        assert srv.metric("tgi_request_success") == 4
    finally:
        srv.stop()


@pytest.mark.parametrize("bad_call", [1, 3], ids=["at prefill", "mid-decode"])
def test_a_row_whose_sampler_fails_fails_alone(tiny_model, monkeypatch, bad_call):
    choose = TokenChooser.choose

    def poisoned(self, logits):  # what a NaN temperature did: multinomial raises for that row only
        self.calls = getattr(self, "calls", 0) + 1
        if self.p.seed == 13 and self.calls == bad_call:
            raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
        return choose(self, logits)

    monkeypatch.setattr(TokenChooser, "choose", poisoned)
    tok, engine = _engine(tiny_model, max_batch_size=4, batch_wait_ms=5000)  # all four share one prefill
    try:
        done = {}
        events = [_submit(engine, tok, p, 6, done, i, do_sample=True, seed=13 if i == 1 else 100 + i)
                  for i, p in enumerate(PROMPTS)]
        assert all(e.wait(30) for e in events)
    finally:
        engine.stop()
    assert isinstance(done[1], ErrorEvent) and done[1].status == 424 and "nan" in done[1].message
    for i in (0, 2, 3):
        assert not isinstance(done[i], ErrorEvent), done[i]
        assert done[i].generated_tokens >= 1 and done[i].reason in ("length", "eos_token")


def test_a_failed_batched_forward_is_retried_row_by_row(tiny_model):
    tok, engine = _engine(tiny_model, max_batch_size=4, batch_wait_ms=0)
    try:
        seq = {}
        for i, p in enumerate(PROMPTS):
            _submit(engine, tok, p, 8, seq, i).wait(30)
        longest = max(len(tok(p)["input_ids"]) for p in PROMPTS) + 8
        bad_prompt = "word " * longest  # longer than any healthy row will ever be
        width = len(tok(bad_prompt)["input_ids"])
        forward, lean = engine.model.forward, engine._lean
        assert lean is not None  # decode steps take the lean step (fast_decode); prefill the model's forward

        def failing(ids, positions):  # any batch of two or more fails; the bad row fails even alone, at decode
            if ids.shape[0] > 1:
                raise RuntimeError("batched forward failed")
            if int(positions.max()) >= width:
                raise RuntimeError("poisoned row")

        def flaky(*a, **kw):
            failing(kw["input_ids"], kw["position_ids"])
            return forward(*a, **kw)

        def flaky_lean(ids, positions, mask, cache):
            failing(ids, positions)
            return lean(ids, positions, mask, cache)

        engine.model.forward, engine._lean = flaky, flaky_lean
        engine.batch_wait = 5.0  # the five requests below share their prefill
        got = {}
        events = [_submit(engine, tok, p, 8, got, i) for i, p in enumerate(PROMPTS)]
        events.append(_submit(engine, tok, bad_prompt, 8, got, "bad"))
        assert all(e.wait(60) for e in events)
    finally:
        engine.stop()
    assert isinstance(got["bad"], ErrorEvent) and "poisoned row" in got["bad"].message
    for i in range(len(PROMPTS)):
        assert not isinstance(got[i], ErrorEvent), got[i]
        assert [t.id for t in got[i].tokens] == [t.id for t in seq[i].tokens], PROMPTS[i]


def test_a_clients_next_request_is_not_held_for_company(tiny_model):
    # an idle engine holds a first arrival for company (1.5 s here); a request that comes right
    # after the engine went idle is a client's next one in a loop, and no company follows it
    tok, engine = _engine(tiny_model, max_batch_size=4, batch_wait_ms=1500)
    try:
        done: dict = {}
        t0 = time.perf_counter()
        assert _submit(engine, tok, PROMPTS[0], 2, done, 0).wait(30)
        held = time.perf_counter() - t0
        t1 = time.perf_counter()
        assert _submit(engine, tok, PROMPTS[1], 2, done, 1).wait(30)
        next_one = time.perf_counter() - t1
        time.sleep(0.1)  # idle for a while: the next arrival is held again
        t2 = time.perf_counter()
        assert _submit(engine, tok, PROMPTS[2], 2, done, 2).wait(30)
        after_pause = time.perf_counter() - t2
    finally:
        engine.stop()
    assert held >= 1.4 and after_pause >= 1.4
    assert next_one < 1.0


def test_the_models_own_forward_as_the_step_answers_alike(tiny_model):
    """`Engine(step="forward")`, bench_engine's baseline, never takes the lean step and picks the
    lean step's tokens; an unknown step is refused."""
    picks = {}
    for step in ("lean", "forward"):
        tok, engine = _engine(tiny_model, max_batch_size=8, batch_wait_ms=0, step=step)
        try:
            assert (engine._lean is None) == (step == "forward")
            done = {}
            assert all(e.wait(30) for e in [_submit(engine, tok, p, 12, done, i) for i, p in enumerate(PROMPTS)])
            picks[step] = [[t.id for t in done[i].tokens] for i in range(len(PROMPTS))]
        finally:
            engine.stop()
    assert picks["forward"] == picks["lean"]
    with pytest.raises(ValueError, match="step must be"):
        _engine(tiny_model, step="compiled")


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")
def test_batched_rows_get_packed_products_only_when_batches_can_happen(tiny_model):
    """Engine(batch_kernels="onednn") packs a copy of the linear weights for batches; with
    max_batch_size 1 there are none, so no copy; `torch` never packs; an unknown name is refused."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for size, kernels, packed in ((4, "onednn", True), (1, "onednn", False), (4, "torch", False)):
        engine = Engine(AutoModelForCausalLM.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model),
                        max_batch_size=size, batch_kernels=kernels)
        products = [p for L in engine._lean.layers for p in (L.qkv, L.o, L.gate_up, L.down)] + [engine._lean.head]
        assert all((p.packed is not None) == packed for p in products), (size, kernels)
    with pytest.raises(ValueError, match="batch_kernels"):
        _engine(tiny_model, batch_kernels="mkl")
