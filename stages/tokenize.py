"""Stage tokenize: tokenize data/curated and pack it into data/tokens/ shards.

Reads params `tokenize` and the sources' sampling weights (`data.sources[].weight`); writes data/tokens/{train,val}/shard_XXXXX.npy and
data/tokens/meta.json (docs/CONTRACTS.md), metrics/tokens.json and the length
histogram metrics/token_lengths.csv.
"""
from __future__ import annotations

import os

from lmforge.config import section
from lmforge.curation.curate_config import DataConfig
from lmforge.tokens.pack import TokenizeConfig
from lmforge.io import write_csv, write_json
from lmforge.stage import run_stage

CURATED, TOKENIZER, OUT = "data/curated", "models/tokenizer/tokenizer.json", "data/tokens"
METRICS, LENGTHS = "metrics/tokens.json", "metrics/token_lengths.csv"


def main() -> None:
    cfg = section(TokenizeConfig, "tokenize")
    weights = {s.name: s.weight for s in section(DataConfig, "data").sources}
    # tokenizers reads these when it first encodes in parallel; nothing forks after.
    os.environ["RAYON_NUM_THREADS"] = str(cfg.workers)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if cfg.workers > 1 else "false"
    from tokenizers import Tokenizer

    from lmforge.tokens.pack import pack
    from lmforge.tokens.corpus import curated_files
    from lmforge.io import file_sha256

    if not os.path.isfile(TOKENIZER):
        raise FileNotFoundError(f"{TOKENIZER} not found (run the tokenizer stage first)")
    tok = Tokenizer.from_file(TOKENIZER)
    meta, metrics, hist = pack(curated_files(CURATED), tok, OUT, cfg, file_sha256(TOKENIZER), weights)
    write_json(METRICS, metrics)
    write_csv(LENGTHS, hist)
    print(f"tokenize: {metrics['documents']} documents, {metrics['tokens']} tokens, packing efficiency "
          f"{metrics['packing_efficiency']:.4f}, train/val rows {meta['splits']['train']['rows']}/"
          f"{meta['splits']['val']['rows']} -> {OUT}")


if __name__ == "__main__":
    run_stage(main)
