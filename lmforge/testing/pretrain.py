"""Helpers for the pretraining tests: the tests' tiny recipe and two ways to run it.

A uniquely named module (not conftest) so that test files can import it even
when several test folders each have their own conftest.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false",
       "TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR",
                                              str(Path.home() / ".cache/lmforge/torch_extensions"))}
for _k, _v in ENV.items():
    os.environ.setdefault(_k, _v)
DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

# the tests' tiny recipe: 1-layer model, 4 rows of 64 tokens a step, checkpoint every 2 steps
TINY_MODEL = {"size": "tiny", "depth": 1}


def tiny_pretrain(tokens: Path, tokenizer: Path, out_dir: Path, **over) -> dict:
    cfg = {"tokens_dir": str(tokens), "tokenizer_dir": str(tokenizer), "out_dir": str(out_dir),
           "max_steps": 6, "global_batch_tokens": 256, "micro_batch_size": 4, "lr": 3e-3,
           "eval_every": 3, "eval_rows": 8, "checkpoint_every": 2, "progress": False, "threads": 1}
    cfg.update(over)
    return cfg


def run_inprocess(workdir: Path, model: dict, pretrain: dict, seed: int = 1337) -> dict:
    """Run pretraining in this process (shares one gloo group across runs)."""
    from lmforge.config import build
    from lmforge.model import ModelConfig
    from lmforge.train.config import PretrainConfig
    from lmforge.train.trainer import Outputs, pretrain as run

    workdir.mkdir(parents=True, exist_ok=True)
    out = Outputs(*(str(workdir / p) for p in (
        "metrics/pretrain.json", "metrics/pretrain_steps.csv", "metrics/pretrain_eval.csv",
        "metrics/timing/pretrain.json", "metrics/timing/pretrain_steps.csv",
        "metrics/live/pretrain", "metrics/timing/live/pretrain")))
    import torch

    saved_env = {k: os.environ.get(k) for k in DIST_VARS}
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        return run(build(PretrainConfig, pretrain, "pretrain"), build(ModelConfig, model, "model"), seed, out)
    finally:  # leave the pytest process as other test folders expect it
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_stage(workdir: Path, model: dict, pretrain: dict, seed: int = 1337, env: dict | None = None,
              launcher: list[str] | None = None, timeout: int = 240, params: dict | None = None
              ) -> subprocess.CompletedProcess:
    """Run ``python -m stages.pretrain`` (optionally under a launcher) in ``workdir``; ``params``: more keys."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "params.yaml").write_text(yaml.safe_dump({"seed": seed, "model": model, "pretrain": pretrain,
                                                         **(params or {})}))
    full_env = {**os.environ, **ENV, "PYTHONPATH": str(REPO), **(env or {})}
    for k in DIST_VARS + ("LOCAL_WORLD_SIZE",):
        full_env.pop(k, None)
    cmd = (launcher or [sys.executable]) + ["-m", "stages.pretrain"]
    return subprocess.run(cmd, cwd=workdir, env=full_env, capture_output=True, text=True, timeout=timeout)


def val_loss_of(model_dir, tokens, rows, micro):
    """Held-out loss of an exported HF folder over the first ``rows`` val rows, and the model."""
    import torch
    from transformers import AutoModelForCausalLM

    from lmforge.train.data import IGNORE, PackedTokens
    from lmforge.train.trainer import lm_loss

    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True).eval()
    val = PackedTokens(tokens, "val")
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, min(rows, val.rows), micro):
            x, y = val.rows_to_batch(range(i, min(i + micro, rows, val.rows)))
            total += float(lm_loss(model(input_ids=x).logits, y, reduction="sum"))
            count += int((y != IGNORE).sum())
    return total / count, model


# The golden recipe: a seeded synthetic Markov-chain token stream, so the loss curve
# depends only on the code and the maths, not on which documentation is installed.
GOLDEN_VOCAB, GOLDEN_SEQ = 512, 64


def markov_tokens(root: Path, rows=(96, 16), seed=0) -> Path:
    import json

    import numpy as np

    rng = np.random.default_rng(seed)
    nxt = rng.integers(3, GOLDEN_VOCAB, size=(GOLDEN_VOCAB, 4))   # each token has 4 likely successors
    meta = {"seq_len": GOLDEN_SEQ, "row_len": GOLDEN_SEQ + 1, "dtype": "uint16", "vocab_size": GOLDEN_VOCAB,
            "tokenizer_sha256": "synthetic", "bos_id": 1, "eos_id": 2, "pad_id": 0, "splits": {}}
    for split, n in zip(("train", "val"), rows):
        seq = np.empty(n * (GOLDEN_SEQ + 1), dtype=np.uint16)
        t = 3
        for i in range(seq.size):
            t = nxt[t, rng.integers(0, 4)] if rng.random() < 0.9 else rng.integers(3, GOLDEN_VOCAB)
            seq[i] = t
        (root / split).mkdir(parents=True)
        np.save(root / split / "shard_00000.npy", seq.reshape(n, GOLDEN_SEQ + 1))
        meta["splits"][split] = {"shards": [f"{split}/shard_00000.npy"], "rows": n, "tokens": int(seq.size)}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def golden_config(workdir: Path) -> dict:
    return {"tokens_dir": str(workdir / "tokens"), "tokenizer_dir": str(workdir / "no-tokenizer"),
            "out_dir": str(workdir / "models/pretrain"), "max_steps": 8, "global_batch_tokens": 512,
            "micro_batch_size": 4, "lr": 3e-3, "eval_every": 4, "eval_rows": 16, "checkpoint_every": 8,
            "progress": False, "threads": 1}


def golden_run(workdir: Path) -> dict:
    """The golden recipe in this process: losses, metrics and a hash of the exported weights."""
    import csv
    import hashlib

    from safetensors.torch import load_file

    markov_tokens(workdir / "tokens")
    metrics = run_inprocess(workdir, {"size": "tiny"}, golden_config(workdir), seed=1337)
    col = lambda f, k: [float(r[k]) for r in csv.DictReader(open(workdir / "metrics" / f))]  # noqa: E731
    weights = load_file(str(workdir / "models/pretrain/hf/model.safetensors"))
    sha = hashlib.sha256(b"".join(weights[k].numpy().tobytes() for k in sorted(weights))).hexdigest()
    return {"train_loss": col("pretrain_steps.csv", "loss"), "val_loss": col("pretrain_eval.csv", "val_loss"),
            "metrics": metrics, "weights_sha256": sha}


def main(argv: list[str]) -> None:
    """``python -m lmforge.testing.pretrain golden DIR``: one golden run, as a ``GOLDEN {json}`` line."""
    assert argv[:1] == ["golden"] and len(argv) == 2, "usage: python -m lmforge.testing.pretrain golden DIR"
    res = golden_run(Path(argv[1]))
    print("GOLDEN " + json.dumps({k: v for k, v in res.items() if k != "metrics"}))


if __name__ == "__main__":
    main(sys.argv[1:])
