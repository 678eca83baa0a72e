"""Tokens: the BPE tokenizer trained on the curated corpus, and the packed token shards.

It reads curation's published files (``corpus``), never curation's code, so the two rooms
sit side by side on the same floor.
"""
