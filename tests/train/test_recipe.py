"""The recipe's pure parts: LR schedule, decay groups, accumulation, DeepSpeed config, sizes."""

import pytest

from lmforge.config import ParamsError, build
from lmforge.model import ModelConfig, build_model, count_params
from lmforge.train import deepspeed_config, grad_accum_steps, lr_at, param_groups
from lmforge.train.config import PretrainConfig


def test_schedule_key_steps():
    peak, n, warm, lo = 1e-3, 1000, 20, 0.1
    assert lr_at(0, peak, n, warm, lo) == pytest.approx(peak / 20)
    assert lr_at(9, peak, n, warm, lo) == pytest.approx(peak / 2)
    assert lr_at(19, peak, n, warm, lo) == pytest.approx(peak)          # end of warm-up
    assert lr_at(20, peak, n, warm, lo) == pytest.approx(peak)          # cosine starts at the peak
    mid = 20 + (n - 1 - 20) / 2
    assert lr_at(int(mid), peak, n, warm, lo) == pytest.approx(peak * 0.55, rel=1e-2)
    assert lr_at(n - 1, peak, n, warm, lo) == pytest.approx(peak * 0.1)  # 10 % of peak at the end
    lrs = [lr_at(s, peak, n, warm, lo) for s in range(warm, n)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_warmup_is_two_percent():
    assert PretrainConfig(max_steps=1000).warmup_steps == 20
    assert PretrainConfig(max_steps=10).warmup_steps == 1


def test_no_decay_on_norms_and_embeddings():
    model = build_model(ModelConfig(depth=1), vocab_size=128, seq_len=16)
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    nd = {names[id(p)] for p in no_decay["params"]}
    d = {names[id(p)] for p in decay["params"]}
    assert "model.embed_tokens.weight" in nd and "model.norm.weight" in nd
    assert any("input_layernorm" in n for n in nd)
    assert all(("proj" in n) for n in d) and len(d) == 7


def test_accumulation_reaches_the_token_target():
    assert grad_accum_steps(8192, 256, 8, 1) == 4
    assert grad_accum_steps(8192, 256, 8, 2) == 2
    assert grad_accum_steps(100, 256, 8, 1) == 1


def test_deepspeed_config():
    c = deepspeed_config(3, micro_batch_size=4, grad_accum=2, world_size=2, grad_clip=1.0, bf16=True)
    assert c["train_batch_size"] == 16 and c["gradient_clipping"] == 1.0
    assert c["zero_optimization"]["stage"] == 3 and c["bf16"]["enabled"]
    assert c["zero_allow_untested_optimizer"]


def test_sizes_from_one_dial():
    tiny = count_params(ModelConfig(size="tiny"), 4096)["total"]
    assert 1e6 < tiny < 10e6
    small = count_params(ModelConfig(size="small"), 50257)["total"]
    assert abs(small - 124e6) / 124e6 < 0.02
    m = ModelConfig(size="small")
    assert (m.n_layers, m.width, m.n_heads) == (12, 768, 12)
    real = build_model(ModelConfig(size="tiny"), 4096, 256)
    assert sum(p.numel() for p in real.parameters()) == tiny
    assert real.config._attn_implementation == "sdpa"


def test_bad_params_name_the_key():
    with pytest.raises(ParamsError, match="zero_stage"):
        build(PretrainConfig, {"zero_stage": 4}, "pretrain")
    with pytest.raises(ParamsError, match="nan_policy"):
        build(PretrainConfig, {"nan_policy": "ignore"}, "pretrain")
    with pytest.raises(ParamsError, match="model.size"):
        build(ModelConfig, {"size": "huge"}, "model")
