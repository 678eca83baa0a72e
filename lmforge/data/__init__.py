"""Data layer: curation, checks, tokenizer and packed token shards."""
