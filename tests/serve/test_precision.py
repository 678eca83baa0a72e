"""Served = offline in the precision a deployment serves: the local server loaded in float32 (the
release's own dtype, what `lmforge serve` and vLLM's files run) and in bfloat16 (what TGI's
files run, since TGI has no float32) gives, request by request, the greedy tokens that
transformers' own generate gives on the same folder loaded in that dtype."""
from __future__ import annotations

import httpx
import pytest

PROMPTS = ["Hello world", "The quick brown fox jumps over", "Python is a programming language that lets",
           "A", "Debian is"]
NEW = 12


def offline(model_dir, dtype: str) -> list[list[int]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).eval()
    out = []
    with torch.no_grad():
        for p in PROMPTS:
            ids = tok(p, return_tensors="pt")["input_ids"]
            gen = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW, do_sample=False,
                                 top_p=None, top_k=None, temperature=None)
            out.append(gen[0, ids.shape[1]:].tolist())
    return out


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_served_greedy_tokens_equal_offline_in_the_same_precision(tiny_model, server_factory, dtype):
    srv = server_factory(tiny_model, dtype=dtype, max_batch_size=1)
    try:
        assert httpx.get(srv.url + "/info").json()["model_dtype"] == dtype
        served = []
        for p in PROMPTS:
            r = httpx.post(srv.url + "/generate", json={"inputs": p, "parameters": {
                "max_new_tokens": NEW, "details": True, "decoder_input_details": False}}, timeout=60).json()
            served.append([t["id"] for t in r["details"]["tokens"]])
    finally:
        srv.stop()
    want = offline(tiny_model, dtype)
    if dtype != "float32":   # the precisions really differ here, so a server that ignored dtype would fail
        assert want != offline(tiny_model, "float32")
    for p, s, o in zip(PROMPTS, served, want):
        assert s == o[:len(s)] and len(s) >= 1, (dtype, p, s, o)   # the server may stop early at an end token
