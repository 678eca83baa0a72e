"""Broken models for the gate tests: one that always emits its end-of-turn token (mute) and
one that repeats one ordinary token (looping), built from a tiny Llama by weight surgery.

Every layer's output projections are zeroed, so the residual stream is the token
embedding; embedding column 0 is 1 for every token and the final norm keeps only that
dimension, so the last hidden state is a positive constant along dimension 0; the
untied head scores only ``token`` along it. Greedy decoding then picks ``token`` at
every step, whatever the prompt: an honest stand-in for a collapsed model.
"""
from __future__ import annotations

from pathlib import Path


def make_parrot(base_dir: Path, out: Path, token: int) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from lmforge.align.common import load_tokenizer, save_model

    cfg = AutoConfig.from_pretrained(str(base_dir))
    cfg.tie_word_embeddings = False
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight[:, 0] = 1.0
        model.model.norm.weight.zero_()
        model.model.norm.weight[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[token, 0] = 10.0
    save_model(model, load_tokenizer(base_dir), out)
    return out


def mute_and_looping(base_dir: Path, work: Path) -> dict[str, Path]:
    """{"mute": always the end-of-turn token, "looping": always " the"} next to ``work``."""
    from lmforge.align.common import load_tokenizer
    from lmforge.chat import stop_token_ids

    tok = load_tokenizer(base_dir)
    the = tok(" the", add_special_tokens=False)["input_ids"][-1]
    return {"mute": make_parrot(base_dir, work / "mute", stop_token_ids(tok)[0]),
            "looping": make_parrot(base_dir, work / "looping", the)}
