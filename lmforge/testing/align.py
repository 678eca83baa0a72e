"""Tiny stand-ins for ``models/pretrain/hf`` so post-training can be tested alone.

``make_llama`` saves a randomly initialised LlamaForCausalLM with a byte-level BPE
tokenizer that has the special tokens and chat template of docs/CONTRACTS.md.
``make_gpt2`` saves a different architecture with its own ChatML-style tokenizer
and template: the "outside model" a user may name in ``sft.base_model``.
"""
from __future__ import annotations

from pathlib import Path

from lmforge.align.common import CONTRACT_TEMPLATE

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "instructions" / "pairs.parquet"
SEED = 1234


def sft_params(base, instr, out, **kw):
    from lmforge.align.sft import SFTStageConfig
    from lmforge.config import build

    train = {"max_steps": 30, "batch_size": 8, "lr": 3e-3, "max_length": 128, **kw.pop("train", {})}
    return build(SFTStageConfig, {"base_model": str(base), "data_dir": str(instr), "out_dir": str(out),
                             "feedback_dir": str(out) + "-nofeedback", "max_per_source": 40,
                             "train": train, **kw}, "sft")

SPECIALS = ["<|bos|>", "<|eos|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] }}<|im_end|>{% endgeneration %}"
    "{% else %}{{ message['content'] }}<|im_end|>{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _bpe(texts: list[str], vocab: int, specials: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tk


def make_llama(out: Path, texts: list[str], vocab: int = 1024, hidden: int = 64, layers: int = 2,
               seed: int = 0) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=_bpe(texts, vocab, SPECIALS), bos_token="<|bos|>",
                                  eos_token="<|eos|>", pad_token="<|pad|>",
                                  extra_special_tokens=SPECIALS[3:])
    tok.chat_template = CONTRACT_TEMPLATE
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=512, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def make_gpt2(out: Path, texts: list[str], vocab: int = 768, seed: int = 0) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = PreTrainedTokenizerFast(tokenizer_object=_bpe(texts, vocab, specials), eos_token="<|endoftext|>",
                                  pad_token="<|endoftext|>", extra_special_tokens=specials[1:])
    tok.chat_template = CHATML
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(tok), n_embd=48, n_layer=2, n_head=4, n_positions=512,
                     bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out
