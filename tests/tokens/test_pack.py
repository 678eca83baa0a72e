"""Tokenize+pack: efficiency >= 0.99, exact token conservation, the contract's shapes
and meta.json, split by document, determinism, and the validate_tokens suite."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lmforge.checks.runner import DataCheckError, run_checks
from lmforge.tokens.corpus import curated_files
from lmforge.io import file_sha256
from lmforge.tokens.pack import TokenizeConfig, pack
from lmforge.checks.suites import TokenChecks, shard_frame, token_expectations

from support.tokens import write_curated

SEQ = 64


def _tok(tokenizer_dir):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))


@pytest.fixture(scope="module")
def packed(curated_dir, tokenizer_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "tokens"
    sha = file_sha256(tokenizer_dir / "tokenizer.json")
    meta, metrics, hist = pack(curated_files(curated_dir), _tok(tokenizer_dir), out,
                               TokenizeConfig(seq_len=SEQ, rows_per_shard=700, chunk_docs=16), sha)
    return out, meta, metrics, hist, sha


def _rows(out, meta, split):
    return np.concatenate([np.load(out / s, mmap_mode="r") for s in meta["splits"][split]["shards"]])


def test_meta_follows_contract(packed, tokenizer_dir):
    out, meta, metrics, hist, sha = packed
    assert json.loads((out / "meta.json").read_text()) == meta
    assert (meta["seq_len"], meta["row_len"], meta["dtype"], meta["vocab_size"]) == (SEQ, SEQ + 1, "uint16", 1024)
    assert meta["tokenizer_sha256"] == sha
    assert (meta["pad_id"], meta["bos_id"], meta["eos_id"]) == (0, 1, 2)
    assert len(meta["splits"]["train"]["shards"]) > 1  # several shards
    for split in ("train", "val"):
        for name in meta["splits"][split]["shards"]:
            a = np.load(out / name, mmap_mode="r")
            assert a.dtype == np.uint16 and a.ndim == 2 and a.shape[1] == SEQ + 1
        assert _rows(out, meta, split).shape[0] == meta["splits"][split]["rows"] > 0


def test_efficiency_and_exact_conservation(packed, curated_dir, tokenizer_dir):
    out, meta, metrics, hist, _ = packed
    assert metrics["packing_efficiency"] >= 0.99
    tok = _tok(tokenizer_dir)
    df = pd.concat([pd.read_parquet(f) for f in curated_files(curated_dir)])
    for split in ("train", "val"):
        flat = _rows(out, meta, split).reshape(-1)
        pad = meta["splits"][split]["padding"]
        assert pad < SEQ + 1 and (flat[len(flat) - pad:] == meta["pad_id"]).all()
        assert not (flat[: len(flat) - pad] == meta["pad_id"]).any()  # padding only ends the split
        expected = []
        for text in df[df["split"] == split]["text"]:  # documents of this split only, in order
            expected += tok.encode(text, add_special_tokens=False).ids + [meta["eos_id"]]
        assert np.array_equal(flat[: len(flat) - pad], np.array(expected))
        assert metrics["splits"][split]["documents"] == int((df["split"] == split).sum())
        assert int(flat.max()) < meta["vocab_size"]
    assert sum(metrics["tokens_per_source"].values()) == metrics["tokens"]
    assert set(metrics["tokens_per_language"]) == {"en", "de", "fr"}
    assert sum(r["documents"] for r in hist) == metrics["documents"]


def test_deterministic_and_chunking_independent(packed, curated_dir, tokenizer_dir, tmp_path):
    out, meta, _, _, sha = packed
    meta2, _, _ = pack(curated_files(curated_dir), _tok(tokenizer_dir), tmp_path / "t",
                       TokenizeConfig(seq_len=SEQ, rows_per_shard=10_000, chunk_docs=512), sha)
    for split in ("train", "val"):
        assert np.array_equal(_rows(out, meta, split), _rows(tmp_path / "t", meta2, split))


def test_special_token_text_in_documents_is_not_special(curated_docs, tokenizer_dir, tmp_path):
    docs = [dict(d, split="train") for d in curated_docs[:3]]
    docs[0]["text"] = "a literal <|eos|> and <|pad|> in a page"
    write_curated(docs, tmp_path / "cur", shards=1)
    meta, metrics, _ = pack(curated_files(tmp_path / "cur"), _tok(tokenizer_dir), tmp_path / "t",
                            TokenizeConfig(seq_len=SEQ), "x")
    flat = _rows(tmp_path / "t", meta, "train").reshape(-1)
    assert int((flat == meta["eos_id"]).sum()) == 3  # one EOS per document, none from the text
    assert int((flat == meta["pad_id"]).sum()) == meta["splits"]["train"]["padding"]


def test_bad_split_fails_and_writes_nothing(curated_docs, tokenizer_dir, tmp_path):
    docs = [dict(d) for d in curated_docs[:4]]
    docs[2]["split"] = "test"
    write_curated(docs, tmp_path / "cur", shards=1)
    with pytest.raises(ValueError, match=r"part-00000\.parquet: split values \['test'\]"):
        pack(curated_files(tmp_path / "cur"), _tok(tokenizer_dir), tmp_path / "t", TokenizeConfig(), "x")
    assert not (tmp_path / "t").exists() and not list(tmp_path.glob(".t.*"))


def test_validate_tokens_suite(packed, tokenizer_dir, tmp_path):
    out, meta, _, _, sha = packed
    checks = token_expectations(TokenChecks(), 1024, sha, SEQ)
    df, files = shard_frame(out)
    assert run_checks(df, "tokens", checks, tmp_path / "ok.json", files=files)["success"]
    # Corrupt a copy: an id beyond the vocabulary in one shard, and a stale tokenizer hash.
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    victim = bad / meta["splits"]["train"]["shards"][1]
    a = np.load(victim)
    a[3, 5] = 5000
    np.save(victim, a)
    m = json.loads((bad / "meta.json").read_text())
    m["tokenizer_sha256"] = "0" * 64
    (bad / "meta.json").write_text(json.dumps(m))
    df, files = shard_frame(bad)
    with pytest.raises(DataCheckError) as err:
        run_checks(df, "tokens", checks, tmp_path / "bad.json", files=files)
    lines = {line for line in str(err.value).splitlines() if "column='max_id'" in line}
    assert len(lines) == 1 and "5000" in next(iter(lines)) and str(victim) in next(iter(lines))
    assert {f["expectation"] for f in err.value.failures} == {
        "expect_column_values_to_be_between", "expect_column_values_to_be_in_set"}
    assert any(f["kwargs"].get("column") == "meta_tokenizer_sha256" for f in err.value.failures)


def test_stages_chain_writes_contract_outputs(curated_docs, tmp_path):
    """tokenizer → tokenize → validate_tokens as DVC runs them (python -m stages.X in the repo root)."""
    repo = Path(__file__).resolve().parents[2]
    write_curated(curated_docs, tmp_path / "data" / "curated")
    params = (repo / "params.yaml").read_text().replace("vocab_size: 4096", "vocab_size: 1024")
    (tmp_path / "params.yaml").write_text(params.replace("seq_len: 256", f"seq_len: {SEQ}"))
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    for stage in ("tokenizer", "tokenize", "validate_tokens"):
        proc = subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    meta = json.loads((tmp_path / "data/tokens/meta.json").read_text())
    assert meta["seq_len"] == SEQ and meta["vocab_size"] == 1024
    assert meta["tokenizer_sha256"] == file_sha256(tmp_path / "models/tokenizer/tokenizer.json")
    metrics = json.loads((tmp_path / "metrics/tokens.json").read_text())
    assert metrics["packing_efficiency"] >= 0.99 and metrics["documents"] == len(curated_docs)
    assert (tmp_path / "metrics/token_lengths.csv").read_text().startswith("tokens_upto,documents\n")
    assert json.loads((tmp_path / "metrics/gx/tokens_summary.json").read_text())["success"] is True
    assert (tmp_path / "reports/gx/tokens/index.html").is_file()


def test_source_weights_mix_the_training_split_only(packed, curated_dir, tokenizer_dir, tmp_path):
    from lmforge.tokens.pack import copies

    out, meta, metrics, _, sha = packed
    up, down = sorted(metrics["tokens_per_source"])[:2]
    weights = {up: 2.0, down: 0.5}
    cfg = TokenizeConfig(seq_len=SEQ, rows_per_shard=700, chunk_docs=16)
    meta2, metrics2, _ = pack(curated_files(curated_dir), _tok(tokenizer_dir), tmp_path / "w", cfg, sha, weights)
    assert np.array_equal(_rows(out, meta, "val"), _rows(tmp_path / "w", meta2, "val"))  # never reweighted
    df = pd.concat([pd.read_parquet(f) for f in curated_files(curated_dir)])
    train = df[df["split"] == "train"]
    tok = _tok(tokenizer_dir)
    n = {i: len(tok.encode(t, add_special_tokens=False).ids) + 1 for i, t in zip(train["id"], train["text"])}
    k = {i: copies(i, weights.get(src, 1.0)) for i, src in zip(train["id"], train["source"])}
    down_ids = list(train[train["source"] == down]["id"])
    assert all(k[i] == 2 for i in train[train["source"] == up]["id"])
    assert 0.2 * len(down_ids) < sum(k[i] for i in down_ids) < 0.8 * len(down_ids)   # about half
    assert metrics2["splits"]["train"]["tokens"] == sum(n[i] * k[i] for i in n)       # whole documents only
    assert metrics2["splits"]["train"]["documents"] == sum(k.values())
    assert metrics2["source_weights"] == weights
    again, _, _ = pack(curated_files(curated_dir), _tok(tokenizer_dir), tmp_path / "w2",
                       TokenizeConfig(seq_len=SEQ, rows_per_shard=700, chunk_docs=512), sha, weights)
    assert np.array_equal(_rows(tmp_path / "w", meta2, "train"), _rows(tmp_path / "w2", again, "train"))
