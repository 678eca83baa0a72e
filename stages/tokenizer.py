"""Stage tokenizer: train the byte-level BPE on the curated train split.

Reads params `tokenizer`; writes models/tokenizer/ (save_pretrained: tokenizer.json,
chat template, special tokens) and metrics/tokenizer.json. Refuses to run when
validate_curated recorded a failure, also when started by hand.
"""
from __future__ import annotations

import json
import os

from lmforge.config import section
from lmforge.tokens.tokenizer import TokenizerConfig, build
from lmforge.io import write_json
from lmforge.stage import StageFailure, run_stage

CURATED, OUT, METRICS = "data/curated", "models/tokenizer", "metrics/tokenizer.json"
CHECKS = "metrics/gx/curated_summary.json"


def main() -> None:
    cfg = section(TokenizerConfig, "tokenizer")
    if os.path.isfile(CHECKS) and not json.load(open(CHECKS)).get("success"):
        raise StageFailure(f"the curated data failed its checks ({CHECKS}); "
                           "fix it and rerun validate_curated")
    metrics = build(CURATED, OUT, cfg)
    write_json(METRICS, metrics)
    print(f"tokenizer: vocab {metrics['vocab_size']}, val bytes/token {metrics['val_bytes_per_token']} -> {OUT}")


if __name__ == "__main__":
    run_stage(main)
