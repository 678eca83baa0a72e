"""The batch's KV-cache bookkeeping: joins, leaves and failed steps keep every row's keys and values."""
from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.cache_utils import DynamicLayer

from lmforge.serve.kv_cache import BatchCache, BufferedLayer
from lmforge.serve.weights import lay_out_for_decode

CONFIG = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                     num_key_value_heads=2, vocab_size=64, max_position_embeddings=64, tie_word_embeddings=True)


def _kv(rows: int, width: int, seed: int) -> torch.Tensor:
    return torch.randn(rows, 2, width, 16, generator=torch.Generator().manual_seed(seed))


def _batch(rows: int, lengths: list[int], seed: int) -> BatchCache:
    """A batch as a prefill leaves it: rows left-padded to the longest, keys = values = random."""
    kv = BatchCache(CONFIG, spare=2)
    width = max(lengths)
    mask = torch.zeros(rows, width, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, width - n:] = 1
    cache = kv.new_cache()
    for layer_idx, layer in enumerate(cache.layers):
        t = _kv(rows, width, seed + layer_idx)
        layer.update(t, t.clone())
    return kv.like(cache, mask)


def _real(kv: BatchCache, row: int, layer: int = 0) -> torch.Tensor:
    """The keys of `row`'s real (unpadded) columns."""
    keys = kv.cache.layers[layer].keys[row]
    return keys[:, kv.mask[row].bool()]


def test_buffered_layer_writes_in_place_and_matches_concatenation():
    buffered, plain = BufferedLayer(spare=3), DynamicLayer()
    for step, width in enumerate([5, 1, 1, 1, 1, 4, 1]):  # grows past its spare columns twice
        t = _kv(2, width, step)
        got = buffered.update(t, -t)
        want = plain.update(t, -t)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    buffered.cut(10)
    assert buffered.get_seq_length() == 10 and torch.equal(buffered.keys, plain.keys[:, :, :10])


def test_leaving_rows_keep_their_columns_and_all_padding_columns_go():
    kv = _batch(3, [2, 6, 4], seed=1)
    before = [_real(kv, i) for i in range(3)]
    kv.select([0, 2])  # the longest row leaves: two leading columns are padding in both others
    assert kv.rows == 2 and kv.mask.shape[1] == 4 and kv.padded
    assert torch.equal(_real(kv, 0), before[0]) and torch.equal(_real(kv, 1), before[2])
    kv.select([1])
    assert not kv.padded and kv.mask.shape[1] == 4 and torch.equal(_real(kv, 0), before[2])


def test_joining_rows_are_left_padded_to_the_running_width():
    running = _batch(2, [3, 7], seed=2)
    newcomers = _batch(1, [4], seed=3)
    before = [_real(running, 0), _real(running, 1), _real(newcomers, 0)]
    running.extend(newcomers)
    assert running.rows == 3 and running.mask.shape[1] == 7
    for i in range(3):
        assert torch.equal(_real(running, i), before[i])
    assert running.cache.layers[1].keys.shape == (3, 2, 7, 16)


def test_a_step_opens_one_column_and_a_failed_step_is_undone():
    kv = _batch(2, [3, 5], seed=4)
    mask, positions = kv.grow()
    assert positions.flatten().tolist() == [3, 5] and mask.shape == (2, 6) and mask[:, -1].tolist() == [1, 1]
    kv.cache.layers[0].update(_kv(2, 1, 9), _kv(2, 1, 9))  # the first layer ran, then the pass failed
    kv.rollback()
    assert kv.mask.shape == (2, 5) and all(layer.keys.shape[2] == 5 for layer in kv.cache.layers)


def test_one_row_alone_needs_no_attention_mask():
    kv = _batch(1, [4], seed=5)
    mask, positions = kv.grow()
    assert mask is None and positions.tolist() == [[4]]


def test_split_gives_each_row_its_own_batch():
    kv = _batch(3, [2, 5, 3], seed=6)
    before = [_real(kv, i) for i in range(3)]
    singles = kv.split()
    assert [s.rows for s in singles] == [1, 1, 1]
    assert [s.mask.shape[1] for s in singles] == [2, 5, 3]
    for s, want in zip(singles, before):
        assert torch.equal(_real(s, 0), want)


def test_weights_laid_out_for_decode_compute_the_same_and_stay_tied():
    torch.manual_seed(0)
    model = LlamaForCausalLM(CONFIG).eval()
    ids = torch.randint(0, 64, (3, 7))
    with torch.inference_mode():
        want = model(input_ids=ids).logits
        lay_out_for_decode(model)
        got = model(input_ids=ids).logits
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert not model.lm_head.weight.is_contiguous() and model.lm_head.weight.t().is_contiguous()
    assert torch.allclose(got, want, atol=1e-5) and torch.equal(got.argmax(-1), want.argmax(-1))
