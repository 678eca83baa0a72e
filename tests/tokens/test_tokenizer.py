"""Tokenizer: round trip, special tokens and chat template per docs/CONTRACTS.md,
loadable by AutoTokenizer offline, deterministic training."""
from __future__ import annotations

import pytest

from lmforge.config import ParamsError
from lmforge.io import file_sha256
from lmforge.chat import SPECIAL_TOKENS
from lmforge.tokens.tokenizer import TokenizerConfig, build

MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is apt?"},
        {"role": "assistant", "content": "Debian's package tool."}]


@pytest.fixture(scope="module")
def hf_tok(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


def test_autotokenizer_loads_with_special_tokens(hf_tok, tokenizer_dir):
    assert (tokenizer_dir / "tokenizer.json").is_file()
    from transformers import PreTrainedTokenizerFast  # an alias of TokenizersBackend in transformers 5

    assert isinstance(hf_tok, PreTrainedTokenizerFast)
    assert (hf_tok.bos_token, hf_tok.eos_token, hf_tok.pad_token) == ("<|bos|>", "<|eos|>", "<|pad|>")
    assert len(hf_tok) == 1024
    ids = hf_tok.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    assert ids == list(range(len(SPECIAL_TOKENS)))
    for t in ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>"):
        assert t in hf_tok.extra_special_tokens
        assert hf_tok(t, add_special_tokens=False)["input_ids"] == [hf_tok.convert_tokens_to_ids(t)]


@pytest.mark.parametrize("text", ["Grüße aus Köln — 世界! ¿Qué?", "def f(x):\n\treturn x ** 2  # ok\n",
                                  "  leading spaces and \x00 control \u200b chars  "])
def test_round_trip(hf_tok, text):
    ids = hf_tok(text, add_special_tokens=False)["input_ids"]
    assert hf_tok.decode(ids) == text
    assert 0 not in ids and max(ids) < len(hf_tok)


def test_chat_template_renders_contract(hf_tok):
    text = hf_tok.apply_chat_template(MSGS, tokenize=False)
    assert text == ("<|system|>\nBe brief.<|end|>\n<|user|>\nWhat is apt?<|end|>\n"
                    "<|assistant|>\nDebian's package tool.<|end|>\n")
    prompt = hf_tok.apply_chat_template(MSGS[:2], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|system|>\nBe brief.<|end|>\n<|user|>\nWhat is apt?<|end|>\n<|assistant|>\n"
    out = hf_tok.apply_chat_template(MSGS, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    kept = [i for i, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert hf_tok.decode(kept) == "Debian's package tool.<|end|>"
    with pytest.raises(Exception, match="chat role"):
        hf_tok.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_training_is_deterministic(curated_dir, tokenizer_dir, tmp_path):
    build(curated_dir, tmp_path / "again", TokenizerConfig(vocab_size=1024, min_frequency=2))
    assert file_sha256(tmp_path / "again" / "tokenizer.json") == file_sha256(tokenizer_dir / "tokenizer.json")


def test_bad_params_fail_naming_key():
    with pytest.raises(ParamsError, match="tokenizer.vocab_size"):
        TokenizerConfig(vocab_size=100)


def test_tokenizer_output_feeds_generate_directly(tmp_path):
    """`model.generate(**tok(text))` must work: no token_type_ids for a Llama model."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from lmforge.chat import SPECIAL_TOKENS
    from lmforge.tokens.tokenizer import to_transformers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(["hello world"] * 10, trainers.BpeTrainer(vocab_size=300, special_tokens=list(SPECIAL_TOKENS)))
    from transformers import AutoTokenizer

    to_transformers(tok).save_pretrained(str(tmp_path))
    enc = AutoTokenizer.from_pretrained(str(tmp_path))("hello")
    assert set(enc.keys()) == {"input_ids", "attention_mask"}
