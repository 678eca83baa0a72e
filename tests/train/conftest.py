"""Shared fixtures for the pretraining tests: real-text token shards and one reference run.

Expensive things are session-scoped: the tokenizer + shards are built once, and
one uninterrupted reference run is shared by the resume, export and golden tests.
DeepSpeed's op cache lives in a stable TORCH_EXTENSIONS_DIR (set in
lmforge.testing.pretrain) so its one compile (shm_comm) happens once per machine.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest


from lmforge.testing.pretrain import TINY_MODEL, run_inprocess, tiny_pretrain  # noqa: E402


@pytest.fixture(scope="session")
def token_data(tmp_path_factory):
    from support import make_tokens

    root = tmp_path_factory.mktemp("tokens")
    return make_tokens.make(root, vocab_size=512, seq_len=64, max_bytes=250_000)


@pytest.fixture(scope="session")
def reference_run(token_data, tmp_path_factory):
    """One uninterrupted ZeRO-0 run of the tests' tiny recipe (in-process)."""
    tokens, tok = token_data
    work = tmp_path_factory.mktemp("reference")
    cfg = tiny_pretrain(tokens, tok, work / "models/pretrain")
    metrics = run_inprocess(work, TINY_MODEL, cfg)
    return work, cfg, metrics
