"""The lean decode step gives bitwise the logits of the model's own forward, over the engine's cache.

Padded rows (the mask path), grouped-query attention (SmolLM2's shape), bf16 weights, a
rotary table that must grow past max_position_embeddings, padded and unpadded prefills, and
the fallback for what it does not handle. With oneDNN's products for batches: one row still
bitwise, batches equal to float32 rounding with the same greedy picks, and a kernel that
disagrees with F.linear is refused.
"""
from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from lmforge.serve.fast_decode import LlamaDecodeStep, unsupported
from lmforge.serve.kv_cache import BatchCache
from lmforge.serve import weights
from lmforge.serve.weights import Product, lay_out_for_decode


def _model(kv_heads: int = 4, dtype=torch.float32, max_pos: int = 64, tie: bool = True):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=max_pos,
                      tie_word_embeddings=tie, attn_implementation="sdpa")
    return lay_out_for_decode(LlamaForCausalLM(cfg).to(dtype).eval())


def _prefill(model, prompts: list[list[int]]) -> BatchCache:
    width = max(map(len, prompts))
    ids = torch.zeros((len(prompts), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    kv = BatchCache(model.config)
    batch = kv.like(kv.new_cache(), mask)
    model(input_ids=ids, attention_mask=mask if batch.padded else None, position_ids=(mask.cumsum(1) - 1).clamp(min=0),
          cache=batch.cache, use_cache=True)
    return batch


def _steps(model, prompts, n: int, lean: bool, step: LlamaDecodeStep | None = None) -> list[torch.Tensor]:
    """`n` greedy decode steps after a prefill, by the lean step (`step`, default a float32-exact one)
    or the model's forward."""
    step = step or LlamaDecodeStep(model)
    with torch.inference_mode():
        kv = _prefill(model, prompts)
        tokens = torch.tensor([[p[-1]] for p in prompts])
        out = []
        for _ in range(n):
            mask, positions = kv.grow()
            if lean:
                logits = step(tokens, positions, mask, kv.cache)
            else:
                logits = model(input_ids=tokens, attention_mask=mask, position_ids=positions, cache=kv.cache,
                               use_cache=True).logits[:, -1]
            out.append(logits)
            tokens = logits.argmax(-1, keepdim=True)
    return out


@pytest.mark.parametrize("kv_heads,dtype,prompts", [
    (4, torch.float32, [[5, 6, 7, 8]]),                          # one row, no mask
    (4, torch.float32, [[5, 6, 7, 8, 9, 10], [11, 12], [3]]),    # padded rows: the mask path
    (2, torch.float32, [[5, 6, 7, 8, 9], [13, 14, 15]]),         # grouped-query attention
    (4, torch.bfloat16, [[5, 6, 7], [8, 9, 10, 11, 12]]),       # a served dtype other than float32
])
def test_lean_step_is_bitwise_the_models_forward(kv_heads, dtype, prompts):
    model = _model(kv_heads, dtype)
    want = _steps(model, prompts, 6, lean=False)
    got = _steps(model, prompts, 6, lean=True)
    for w, g in zip(want, got):
        assert g.dtype == w.dtype and torch.equal(g, w)


def test_rotary_table_grows_past_max_positions():
    model = _model(max_pos=8)
    want = _steps(model, [[1, 2, 3, 4, 5, 6]], 6, lean=False)   # positions 6..11 > 8
    got = _steps(model, [[1, 2, 3, 4, 5, 6]], 6, lean=True)
    assert all(torch.equal(w, g) for w, g in zip(want, got))


def test_other_models_keep_their_own_forward():
    model = _model()
    assert unsupported(model) is None and LlamaDecodeStep.build(model) is not None
    model.config._attn_implementation = "eager"
    assert "attention" in unsupported(model) and LlamaDecodeStep.build(model) is None
    model = _model()
    model.config.rope_parameters = {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}
    assert "rotary" in unsupported(model)
    model = _model()
    model.model.layers[0].mlp.register_forward_hook(lambda *a: None)
    assert unsupported(model) == "module hooks"


@pytest.mark.parametrize("kv_heads,dtype,lens", [(4, torch.float32, [7]), (2, torch.float32, [7, 7, 7]),
                                                  (4, torch.bfloat16, [7, 7]), (4, torch.float32, [7, 3, 1]),
                                                  (2, torch.float32, [2, 9]), (4, torch.bfloat16, [5, 8, 1])])
def test_lean_prefill_is_bitwise_the_models(kv_heads, dtype, lens):
    model = _model(kv_heads, dtype)
    width = max(lens)
    ids = torch.zeros((len(lens), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lens):   # left-padded, as the engine batches newcomers
        ids[i, width - n:] = torch.arange(3 + 7 * i, 3 + 7 * i + n) % 97
        mask[i, width - n:] = 1
    padded = bool((mask == 0).any())
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    kv = BatchCache(model.config)
    with torch.inference_mode():
        ref_cache, lean_cache = kv.new_cache(), kv.new_cache()
        want = model(input_ids=ids, attention_mask=mask if padded else None, position_ids=positions,
                     cache=ref_cache, use_cache=True, logits_to_keep=1).logits
        got = LlamaDecodeStep(model)(ids, positions, mask if padded else None, lean_cache)
    assert torch.equal(got, want[:, -1])
    for a, b in zip(ref_cache.layers, lean_cache.layers):   # the cache the next steps attend over
        assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)


needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


@pytest.fixture
def onednn_rows(monkeypatch) -> list[int]:
    """The row count of every oneDNN product run from here on (weights._onednn, wrapped)."""
    rows, real = [], weights._onednn
    monkeypatch.setattr(weights, "_onednn", lambda x, *a: rows.append(x.shape[0]) or real(x, *a))
    return rows


@needs_onednn
def test_onednn_batches_agree_with_the_forward_and_one_row_stays_bitwise(onednn_rows):
    calls = onednn_rows
    model = _model(kv_heads=2)
    step = LlamaDecodeStep(model, "onednn")
    calls.clear()   # the build's own check of each packed product
    one = [[5, 6, 7, 8]]
    assert all(torch.equal(w, g) for w, g in zip(_steps(model, one, 6, lean=False),
                                                 _steps(model, one, 6, lean=True, step=step)))
    assert calls == []   # one row: F.linear, the model's own products
    rows = [[5, 6, 7, 8, 9, 10], [11, 12], [3]]
    want = _steps(model, rows, 6, lean=False)
    got = _steps(model, rows, 6, lean=True, step=step)
    assert calls and set(calls) == {3}   # every product of the 3-row steps took oneDNN
    for w, g in zip(want, got):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
        assert torch.equal(g.argmax(-1), w.argmax(-1))


@needs_onednn
def test_a_onednn_product_that_disagrees_is_refused(monkeypatch, caplog):
    lin = torch.nn.Linear(64, 32)
    assert Product(lin, "onednn").packed is not None
    assert Product(lin, "torch").packed is None
    assert Product(lin.to(torch.bfloat16), "onednn").packed is None   # float32 only
    real = weights._onednn
    monkeypatch.setattr(weights, "_onednn", lambda *a: real(*a) * 1.001)
    assert Product(torch.nn.Linear(64, 32), "onednn").packed is None
    assert "differs" in caplog.text
    with pytest.raises(ValueError, match="batch_kernels"):
        Product(lin, "mkl")


@needs_onednn
def test_layers_reading_one_input_share_one_batched_product(onednn_rows):
    torch.manual_seed(0)
    mods = [torch.nn.Linear(64, 32, bias=False), torch.nn.Linear(64, 16), torch.nn.Linear(64, 8, bias=False)]
    fused = Product(mods, "onednn")
    calls = onednn_rows
    calls.clear()   # the build's own check
    one, batch = torch.randn(1, 1, 64), torch.randn(4, 2, 64)
    with torch.inference_mode():
        assert all(torch.equal(g, m(one)) for g, m in zip(fused(one), mods))   # one row: each F.linear
        assert calls == []
        got = fused(batch)
    assert calls == [4] and [g.shape[-1] for g in got] == [32, 16, 8]
    for g, m in zip(got, mods):
        torch.testing.assert_close(g, m(batch).detach(), rtol=1e-4, atol=1e-5)
