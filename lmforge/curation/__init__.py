"""Curation: crawl shards in, curated and rejected documents out.

Readers, HTML extraction, the filter blocks, PII redaction, exact and near dedup, the
shard cache and the Slurm executors live here; the tokenizer and packed token shards that
read the curated documents live one room over, in ``lmforge.tokens``.
"""
import os

# Arrow allocates from the C library's malloc in every curation process (a user's own setting
# wins). Its default pool (mimalloc) keeps the pages it frees: reading a row group of every open
# shard file and writing every output file, the global step's resident memory grew with the
# corpus although Arrow's own peak stayed under 10 MB (main process 213 -> 279 MB from 1x to 8x
# the repeated crawl of bench/bench_curate_memory.py; with malloc 179 -> 202 MB, the growth of
# the dedup index alone). Read when pyarrow is first imported, so it is set here, before any
# module of the room imports pyarrow; shard workers inherit it.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
