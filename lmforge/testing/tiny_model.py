"""A tiny Llama model and byte-level BPE tokenizer that follow docs/CONTRACTS.md.

The serving layer must be testable and benchmarkable before (and without) the real
post-training output. This module builds, in a second or two, a model folder with
exactly the shape the pipeline hands to `release`: `LlamaForCausalLM` safetensors,
a `PreTrainedTokenizerFast` with the contract's special tokens and chat template, and
a generation_config.json. Tests, the benchmark fallback and the deploy-stage tests
use it; nothing downloads anything.
"""
from __future__ import annotations

from pathlib import Path

# the contract's special tokens and chat template, from the one place that defines them
from lmforge.chat import CHAT_TEMPLATE, SPECIAL_TOKENS

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Debian is a free operating system for your computer.",
    "Python is a programming language that lets you work quickly.",
    "A language model predicts the next token from the tokens before it.",
    "What is a package manager? It installs, upgrades and removes software.",
    "Hello, world! How are you today? I am fine, thank you.",
    "Les modèles de langue apprennent à partir de textes. Grüße aus Köln.",
    "0123456789 + - * / = ( ) [ ] { } < > # @ $ % & _ : ; ' \" ` ~ ^ |",
]


def build_tokenizer(vocab_size: int = 320):
    """A byte-level BPE `PreTrainedTokenizerFast` with the contract's specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        pad_token="<|pad|>",
        extra_special_tokens=["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def build_tiny_model(
    out_dir: str | Path,
    *,
    hidden_size: int = 64,
    layers: int = 2,
    max_position_embeddings: int = 256,
    seed: int = 0,
) -> Path:
    """Write a tiny random `LlamaForCausalLM` model folder to ``out_dir``; return it."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    tok = build_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=ids["<|bos|>"],
        eos_token_id=ids["<|eos|>"],
        pad_token_id=ids["<|pad|>"],
        tie_word_embeddings=False,
        # a wide init gives peaked logits, so greedy decoding has no near-ties and
        # batched and unbatched runs pick the same tokens
        initializer_range=0.2,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|bos|>"],
        eos_token_id=[ids["<|eos|>"], ids["<|end|>"]],
        pad_token_id=ids["<|pad|>"],
        max_new_tokens=32,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out
