"""Stage validate_tokens: GX checks on data/tokens before pretraining reads it.

Checks token ids below the tokenizer's vocabulary size, shard shapes and dtype,
meta.json against models/tokenizer (sha256, size) and params `tokenize.seq_len`, and
row counts; params `checks.tokens` names the splits that must exist. Writes
metrics/gx/tokens.json and Data Docs in reports/gx/tokens/; a failed check exits
non-zero naming the expectation and the shard, which stops `dvc repro`.
"""
from __future__ import annotations

from lmforge.config import section
from lmforge.checks.runner import check_stage
from lmforge.tokens.pack import TokenizeConfig
from lmforge.io import file_sha256
from lmforge.checks.suites import ChecksConfig, shard_frame, token_expectations
from lmforge.stage import run_stage

TOKENS, TOKENIZER = "data/tokens", "models/tokenizer/tokenizer.json"
OUT_JSON, DOCS = "metrics/gx/tokens.json", "reports/gx/tokens"
SUMMARY = "metrics/gx/tokens_summary.json"


def main() -> None:
    from tokenizers import Tokenizer

    checks = section(ChecksConfig, "checks").tokens
    seq_len = section(TokenizeConfig, "tokenize").seq_len
    vocab = Tokenizer.from_file(TOKENIZER).get_vocab_size(with_added_tokens=True)
    df, files = shard_frame(TOKENS)
    expectations = token_expectations(checks, vocab, file_sha256(TOKENIZER), seq_len)
    check_stage("validate_tokens", df, "tokens", expectations, OUT_JSON, DOCS, SUMMARY,
                files=files, unit="shards")


if __name__ == "__main__":
    run_stage(main)
