"""Curation: crawl shards in, curated and rejected documents out.

Readers, HTML extraction, the filter blocks, PII redaction, exact and near dedup, the
shard cache and the Slurm executors live here; the tokenizer and packed token shards that
read the curated documents live one room over, in ``lmforge.tokens``.
"""
