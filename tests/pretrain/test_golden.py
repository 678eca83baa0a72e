"""Golden loss curve of the ``tiny`` model: a change that alters the numerics fails here.

Runs the real pretraining path (DeepSpeed ZeRO-0, fp32, CPU) on a seeded synthetic
Markov-chain token stream, so the curve depends only on the code and the maths,
not on which documentation happens to be installed. To accept an intended change
of numerics: ``LMFORGE_UPDATE_GOLDEN=1 pytest tests/pretrain/test_golden.py``.
"""
import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from pretrain_helpers import run_inprocess

GOLDEN = Path(__file__).with_name("golden_tiny_loss.json")
VOCAB, SEQ = 512, 64


def markov_tokens(root: Path, rows=(96, 16), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    nxt = rng.integers(3, VOCAB, size=(VOCAB, 4))           # each token has 4 likely successors
    meta = {"seq_len": SEQ, "row_len": SEQ + 1, "dtype": "uint16", "vocab_size": VOCAB,
            "tokenizer_sha256": "synthetic", "bos_id": 1, "eos_id": 2, "pad_id": 0, "splits": {}}
    for split, n in zip(("train", "val"), rows):
        seq = np.empty(n * (SEQ + 1), dtype=np.uint16)
        t = 3
        for i in range(seq.size):
            t = nxt[t, rng.integers(0, 4)] if rng.random() < 0.9 else rng.integers(3, VOCAB)
            seq[i] = t
        (root / split).mkdir(parents=True)
        np.save(root / split / "shard_00000.npy", seq.reshape(n, SEQ + 1))
        meta["splits"][split] = {"shards": [f"{split}/shard_00000.npy"], "rows": n, "tokens": int(seq.size)}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def test_tiny_loss_matches_golden(tmp_path):
    tokens = markov_tokens(tmp_path / "tokens")
    cfg = {"tokens_dir": str(tokens), "tokenizer_dir": str(tmp_path / "no-tokenizer"),
           "out_dir": str(tmp_path / "models/pretrain"), "max_steps": 8, "global_batch_tokens": 512,
           "micro_batch_size": 4, "lr": 3e-3, "eval_every": 4, "eval_rows": 16, "checkpoint_every": 8,
           "progress": False, "threads": 1}
    m = run_inprocess(tmp_path, {"size": "tiny"}, cfg, seed=1337)
    losses = [float(r["loss"]) for r in csv.DictReader(open(tmp_path / "metrics/pretrain_steps.csv"))]
    evals = [float(r["val_loss"]) for r in csv.DictReader(open(tmp_path / "metrics/pretrain_eval.csv"))]
    now = {"config": {"model": "tiny", **{k: v for k, v in cfg.items() if "dir" not in k}},
           "train_loss": losses, "val_loss": evals}
    if os.environ.get("LMFORGE_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(now, indent=2) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert golden["config"] == now["config"]
    assert losses == pytest.approx(golden["train_loss"], rel=1e-3, abs=1e-3)
    assert evals == pytest.approx(golden["val_loss"], rel=1e-3, abs=1e-3)
    assert m["val_loss"] < m["init_val_loss"]            # and it does start to learn the chain
