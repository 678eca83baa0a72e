"""Packed shards: reading, seeded order, padding, and mismatch errors at start."""
import json
import shutil

import numpy as np
import pytest

from lmforge.train.config import PretrainConfig
from lmforge.train.data import IGNORE, PackedTokens, TokenDataError
from lmforge.train.trainer import check_inputs


def _copy(token_data, tmp_path):
    tokens, tok = token_data
    dst = tmp_path / "tokens"
    shutil.copytree(tokens, dst)
    return dst, tok


def test_reads_rows_and_shuffles_by_seed(token_data):
    tokens, _ = token_data
    tr = PackedTokens(tokens, "train")
    assert tr.rows > 20 and tr.seq_len == 64
    x, y = tr.shuffled_batch(seed=1, position=0, size=4)
    assert x.shape == (4, 64) and y.shape == (4, 64)
    assert (x[:, 1:] == y[:, :-1]).all()            # y is x shifted by one token
    x2, _ = tr.shuffled_batch(seed=1, position=0, size=4)
    x3, _ = tr.shuffled_batch(seed=2, position=0, size=4)
    assert (x == x2).all() and not (x == x3).all()
    # the stream is position-addressed: two half batches equal one whole batch
    a, _ = tr.shuffled_batch(1, 2, 2)
    assert (a == x[2:]).all()
    # past the end it wraps into the next epoch's permutation
    e1 = tr.order(1, 1)
    xe, _ = tr.shuffled_batch(1, tr.rows, 1)
    assert (xe[0] == tr.rows_to_batch([e1[0]])[0][0]).all()


def test_final_row_padding_is_ignored(token_data):
    tokens, _ = token_data
    val = PackedTokens(tokens, "val")
    _, y = val.rows_to_batch([val.rows - 1])
    assert (y == IGNORE).any() and not (y == val.pad_id).any()


def test_vocab_mismatch_fails_at_start(token_data, tmp_path):
    tokens, tok = _copy(token_data, tmp_path)
    meta = json.loads((tokens / "meta.json").read_text())
    meta["vocab_size"] = 1000
    (tokens / "meta.json").write_text(json.dumps(meta))
    cfg = PretrainConfig(tokens_dir=str(tokens), tokenizer_dir=str(tok))
    with pytest.raises(TokenDataError, match=r"vocab_size 1000 does not match the tokenizer"):
        check_inputs(cfg, PackedTokens(tokens, "train"), PackedTokens(tokens, "val"))


def test_seq_len_mismatch_fails_at_start(token_data):
    tokens, tok = token_data
    cfg = PretrainConfig(tokens_dir=str(tokens), tokenizer_dir=str(tok), seq_len=128)
    with pytest.raises(TokenDataError, match=r"seq_len 64 does not match the model's context length 128"):
        check_inputs(cfg, PackedTokens(tokens, "train"), PackedTokens(tokens, "val"))


def test_token_out_of_vocab_and_bad_shapes(token_data, tmp_path):
    tokens, tok = _copy(token_data, tmp_path)
    shard = tokens / "val/shard_00000.npy"
    arr = np.load(shard)
    arr[0, 3] = 600
    np.save(shard, arr)
    cfg = PretrainConfig(tokens_dir=str(tokens), tokenizer_dir=str(tok))
    with pytest.raises(TokenDataError, match=r"split 'val' holds token id 600 >= vocab_size 512"):
        check_inputs(cfg, PackedTokens(tokens, "train"), PackedTokens(tokens, "val"))
    np.save(shard, arr[:, :10])
    with pytest.raises(TokenDataError, match=r"shard_00000.npy: shape \(\d+, 10\), expected \(rows, 65\)"):
        PackedTokens(tokens, "val")
    with pytest.raises(TokenDataError, match="meta.json: not found"):
        PackedTokens(tmp_path / "nowhere", "train")
