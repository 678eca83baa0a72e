"""Build a contract-valid ``data/tokens`` folder and tokenizer from real local text.

Stands in for the data layer in tests: Python's reST documentation sources are
tokenized by a byte-level BPE trained here, documents are EOS-separated, packed
into rows of ``seq_len + 1`` and written as ``.npy`` shards with ``meta.json``
exactly as docs/CONTRACTS.md specifies (the final row padded with ``pad_id``).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

SPECIAL = ["<|pad|>", "<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
DOC_ROOTS = ["/usr/share/doc/python3.11/html/_sources", "/usr/share/doc"]


def real_texts(max_bytes: int) -> list[str]:
    files = []
    for root in DOC_ROOTS:
        r = Path(root)
        if r.is_dir():
            files += sorted(r.rglob("*.rst.txt")) or sorted(r.glob("*/copyright"))
        if files:
            break
    texts, total = [], 0
    for f in files:
        t = f.read_text(errors="ignore").strip()
        if len(t) < 200:
            continue
        texts.append(t)
        total += len(t)
        if total >= max_bytes:
            break
    if not texts:
        raise RuntimeError("no local documentation text found to build test tokens from")
    return texts


def train_tokenizer(texts: list[str], vocab_size: int, out_dir: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|eos|>",
                                   pad_token="<|pad|>")
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return fast


def write_tokens(texts: list[str], fast, out_dir: Path, seq_len: int, val_every: int = 10,
                 rows_per_shard: int = 200) -> dict:
    eos, pad = fast.convert_tokens_to_ids("<|eos|>"), fast.convert_tokens_to_ids("<|pad|>")
    streams = {"train": [], "val": []}
    for i, t in enumerate(texts):
        streams["val" if i % val_every == val_every - 1 else "train"] += fast(t)["input_ids"] + [eos]
    meta = {"seq_len": seq_len, "row_len": seq_len + 1, "dtype": "uint16", "vocab_size": len(fast),
            "tokenizer_sha256": hashlib.sha256(fast.backend_tokenizer.to_str().encode()).hexdigest(),
            "bos_id": fast.convert_tokens_to_ids("<|bos|>"), "eos_id": eos, "pad_id": pad, "splits": {}}
    for split, ids in streams.items():
        n = -(-len(ids) // (seq_len + 1))
        arr = np.full(n * (seq_len + 1), pad, dtype=np.uint16)
        arr[: len(ids)] = ids
        arr = arr.reshape(n, seq_len + 1)
        (out_dir / split).mkdir(parents=True, exist_ok=True)
        shards = []
        for k, s in enumerate(range(0, n, rows_per_shard)):
            rel = f"{split}/shard_{k:05d}.npy"
            np.save(out_dir / rel, arr[s:s + rows_per_shard])
            shards.append(rel)
        meta["splits"][split] = {"shards": shards, "rows": n, "tokens": len(ids)}
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def make(root: Path, vocab_size: int = 512, seq_len: int = 64, max_bytes: int = 400_000) -> tuple[Path, Path]:
    """Create ``root/tokens`` and ``root/tokenizer``; return both paths."""
    texts = real_texts(max_bytes)
    fast = train_tokenizer(texts, vocab_size, root / "tokenizer")
    write_tokens(texts, fast, root / "tokens", seq_len)
    return root / "tokens", root / "tokenizer"


if __name__ == "__main__":
    import sys

    root = Path(sys.argv[1])
    make(root, int(sys.argv[2]) if len(sys.argv) > 2 else 4096, int(sys.argv[3]) if len(sys.argv) > 3 else 256,
         int(sys.argv[4]) if len(sys.argv) > 4 else 3_000_000)
