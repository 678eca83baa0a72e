"""Byte-level BPE tokenizer trained on the curated training split.

Why byte-level BPE with HF ``tokenizers``: every string (any language, code, stray
bytes) encodes without an unknown token, training on a few MB takes seconds on one
core, and the result is a ``tokenizer.json`` that transformers, TRL, TGI and
datatrove all read. The special tokens and the chat template it is trained with live in ``lmforge.chat``
(the contract every room imports downward). Special tokens take the first ids
(pad = 0), so ids are stable whatever the corpus.

Training is deterministic: documents are read in sorted-file, row order, and
``tokenizers``' BPE trainer breaks count ties by pair order, so the same corpus and
params give a byte-identical ``tokenizer.json`` (checked by a test).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from lmforge.chat import BOS, CHAT_TEMPLATE, END, EOS, PAD, ROLE_TOKENS, SPECIAL_TOKENS
from lmforge.config import require
from lmforge.tokens.corpus import curated_files, iter_texts
from lmforge.io import atomic_dir, file_sha256
from lmforge.stage import InputError

@dataclass
class TokenizerConfig:
    """params.yaml `tokenizer:` section."""

    vocab_size: int = 4096
    min_frequency: int = 2
    max_train_docs: int = 0  # 0 = every document of the train split
    batch_docs: int = 1000  # documents handed to the trainer at a time

    def __post_init__(self):
        require(len(SPECIAL_TOKENS) + 256 < self.vocab_size <= 1 << 20,
                f"tokenizer.vocab_size: must be in ({len(SPECIAL_TOKENS) + 256}, 1048576], "
                f"got {self.vocab_size}")
        require(self.min_frequency >= 1, f"tokenizer.min_frequency: must be >= 1, got {self.min_frequency}")
        require(self.max_train_docs >= 0, "tokenizer.max_train_docs: must be >= 0 (0 = all)")
        require(self.batch_docs >= 1, "tokenizer.batch_docs: must be >= 1")


def train_tokenizer(texts: Iterator[list[str]], cfg: TokenizerConfig):
    """Train a byte-level BPE ``tokenizers.Tokenizer`` on batches of texts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=True,  # the Rust trainer's own bars, on stderr
    )
    n = 0

    def counted():
        nonlocal n
        for batch in texts:
            n += len(batch)
            yield batch

    tok.train_from_iterator(counted(), trainer=trainer)
    if n == 0:
        raise InputError("no training documents (is the train split empty?)")
    for i, t in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(t) == i, f"special token {t} has id {tok.token_to_id(t)}, expected {i}"
    return tok


def to_transformers(tok):
    """Wrap a trained ``tokenizers.Tokenizer`` as a ``PreTrainedTokenizerFast``."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=None,
        extra_special_tokens=[*ROLE_TOKENS, END],  # transformers 5 name (was additional_)
        clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"],  # Llama takes no token_type_ids
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def save_tokenizer(tok, out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir`` atomically with ``save_pretrained`` (tokenizer.json + configs)."""
    fast = to_transformers(tok)
    with atomic_dir(out_dir) as tmp:
        fast.save_pretrained(str(tmp))
    return Path(out_dir)


def bytes_per_token(tok, files: Sequence[Path], split: str = "val", limit: int = 2000) -> float | None:
    """Compression on held-out text (UTF-8 bytes per token); None when the split is empty."""
    nbytes = ntok = 0
    for texts in iter_texts(files, split, limit=limit):
        nbytes += sum(len(t.encode("utf-8")) for t in texts)
        ntok += sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False))
    return round(nbytes / ntok, 4) if ntok else None


def build(curated_dir: str | os.PathLike, out_dir: str | os.PathLike, cfg: TokenizerConfig) -> dict:
    """Train on the train split of ``curated_dir``, save to ``out_dir``; return metrics."""
    files = curated_files(curated_dir)
    tok = train_tokenizer(iter_texts(files, "train", cfg.batch_docs, cfg.max_train_docs), cfg)
    save_tokenizer(tok, out_dir)
    return {
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "special_tokens": {t: tok.token_to_id(t) for t in SPECIAL_TOKENS},
        "val_bytes_per_token": bytes_per_token(tok, files, "val"),
        "tokenizer_sha256": file_sha256(Path(out_dir) / "tokenizer.json"),
    }
