"""Exact and near-duplicate detection with datasketch MinHash + MinHashLSH.

Why datasketch rather than datatrove's four MinHash stages: on this corpus size the datatrove
path (signatures to disk, buckets, clusters, filter) costs ~50 docs/s end to end, while one
in-memory LSH pass runs at hundreds to thousands of docs/s at equal or better recall
(bench/bench_dedup.py measures both). Design:

- text is normalised (lower case, word characters only) and cut into ``shingle_size``-word
  shingles, hashed with xxh32 (deterministic across processes, unlike ``hash()``);
- exact duplicates: identical normalised text (sha1), checked first;
- near duplicates: LSH with ``bands`` x ``rows`` proposes candidates among documents kept so
  far; a candidate counts only if its estimated Jaccard similarity >= ``threshold``, so banding
  alone never produces a false positive. The first document in input order is kept, later
  ones point at it through ``duplicate_of``.

A document's ``Sketch`` (normalised-text digest + MinHash values) is all a decision needs, so
the curate shard tasks compute sketches beside the text (``lmforge/curation/signatures.py``) and
the global step decides from sketches alone (``add_sketch``), never holding texts.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Iterable, Iterator

from lmforge.curation.curate_config import DedupConfig

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def shingles(ws: list[str], k: int) -> set[bytes]:
    if len(ws) <= k:
        return {" ".join(ws).encode()} if ws else set()
    return {" ".join(ws[i:i + k]).encode() for i in range(len(ws) - k + 1)}


@dataclass
class Sketch:
    """What dedup needs of one document: its normalised-text digest and its MinHash values."""
    exact: bytes | None                 # sha1 of the normalised text; None when exact dedup is off
    minhash: object | None              # numpy array of num_perm hash values; None when near is off


@dataclass
class Decision:
    id: str
    reason: str | None = None        # None: kept; "exact_dedup" | "near_dedup"
    duplicate_of: str | None = None
    similarity: float | None = None


def import_datasketch():
    """``datasketch``, imported without ``scipy.integrate`` (scipy.optimize, special, linalg: ~2
    CPU-seconds in every curate worker and in the global step). datasketch's LSH imports scipy's
    ``quad`` only to choose bands and rows for a threshold; lmforge always passes them
    (``dedup.bands``, ``dedup.rows``). A stand-in module hands datasketch a ``quad`` that imports
    the real one if it is ever called; ``scipy.integrate`` stays importable afterwards."""
    import sys

    if "datasketch" in sys.modules or "scipy.integrate" in sys.modules:
        import datasketch

        return datasketch
    import types

    def quad(*args, **kwargs):
        from scipy.integrate import quad as real

        return real(*args, **kwargs)

    stub = types.ModuleType("scipy.integrate")
    stub.quad = quad
    sys.modules["scipy.integrate"] = stub
    try:
        import datasketch
    finally:
        if sys.modules.get("scipy.integrate") is stub:
            del sys.modules["scipy.integrate"]
    return datasketch


class Deduplicator:
    """Streaming dedup: feed documents in priority order, get one Decision per document."""

    def __init__(self, params: DedupConfig):
        import xxhash

        ds = import_datasketch()
        MinHash, MinHashLSH = ds.MinHash, ds.MinHashLSH

        self.p = params
        self._hash = xxhash.xxh32_intdigest
        self._template = MinHash(num_perm=params.num_perm, seed=params.seed, hashfunc=self._hash)
        self._MinHash = MinHash
        self.lsh = MinHashLSH(num_perm=params.num_perm, params=(params.bands, params.rows))
        self.exact: dict[bytes, str] = {}
        self.sketches: dict[str, object] = {}
        self.stats = {"documents": 0, "exact_dedup": 0, "near_dedup": 0, "kept": 0}

    def signature(self, ws: list[str]):
        m = self._MinHash(num_perm=self.p.num_perm, hashfunc=self._hash, scheme=self._template.scheme,
                          permutations=self._template.permutations)
        m.update_batch(shingles(ws, self.p.shingle_size))
        return m

    def sketch(self, text: str) -> Sketch:
        ws = words(text)
        exact = hashlib.sha1(" ".join(ws).encode()).digest() if self.p.exact else None
        return Sketch(exact, self.signature(ws).hashvalues if self.p.near else None)

    def lean(self, hashvalues):
        """A signature (values, or their bytes as stored) as a MinHash for the LSH; a LeanMinHash
        holds no permutations, so the index keeps only the values."""
        from datasketch import LeanMinHash

        if isinstance(hashvalues, bytes):
            import numpy as np

            hashvalues = np.frombuffer(hashvalues, dtype=self._template.hashvalues.dtype)
        return LeanMinHash(seed=self.p.seed, hashvalues=hashvalues, scheme=self._template.scheme)

    def add(self, doc_id: str, text: str) -> Decision:
        return self.add_sketch(doc_id, self.sketch(text))

    def add_sketch(self, doc_id: str, sk: Sketch) -> Decision:
        self.stats["documents"] += 1
        if self.p.exact:
            first = self.exact.get(sk.exact)
            if first is not None:
                self.stats["exact_dedup"] += 1
                return Decision(doc_id, "exact_dedup", first, 1.0)
            self.exact[sk.exact] = doc_id
        if self.p.near:
            m = self.lean(sk.minhash)
            best, best_sim = None, 0.0
            for cand in self.lsh.query(m):
                sim = m.jaccard(self.sketches[cand])
                if sim > best_sim or (sim == best_sim and best is not None and cand < best):
                    best, best_sim = cand, sim
            if best is not None and best_sim >= self.p.threshold:
                self.stats["near_dedup"] += 1
                return Decision(doc_id, "near_dedup", best, round(best_sim, 4))
            if doc_id in self.sketches:
                raise ValueError(f"duplicate document id {doc_id!r} in dedup input")
            self.lsh.insert(doc_id, m, check_duplication=False)
            self.sketches[doc_id] = m
        self.stats["kept"] += 1
        return Decision(doc_id)


def dedup(docs: Iterable[tuple[str, str]], params: DedupConfig) -> Iterator[Decision]:
    """Decisions for ``(id, text)`` pairs, in input order (earlier documents win)."""
    d = Deduplicator(params)
    for doc_id, text in docs:
        yield d.add(doc_id, text)


def plant_near_duplicates(docs: list[tuple[str, str]], n: int, seed: int = 0,
                          min_words: int = 120) -> list[tuple[str, str, str]]:
    """``n`` near-duplicates of real documents by small edits, as ``(new_id, text, original_id)``.

    Used by the tests and bench/bench_dedup.py to measure recall. Each copy gets the edits a
    re-crawl or mirror typically shows: one line dropped, one line added, two words replaced
    and whitespace changed. Only documents with at least ``min_words`` words are used.
    """
    import random

    rng = random.Random(seed)
    pool = [(i, t) for i, t in docs if len(t.split()) >= min_words and len(t.splitlines()) >= 3]
    if len(pool) < n:
        raise ValueError(f"only {len(pool)} documents have >= {min_words} words; cannot plant {n}")
    out = []
    for k, (doc_id, text) in enumerate(rng.sample(pool, n)):
        lines = text.splitlines()
        del lines[rng.randrange(len(lines))]
        lines.insert(rng.randrange(len(lines) + 1), "This page was mirrored from the original site.")
        ws = "\n".join(lines).split(" ")
        for _ in range(2):
            ws[rng.randrange(len(ws))] = rng.choice(["foo", "bar", "mirror", "copy"])
        out.append((f"planted-{k:03d}", "  ".join(ws), doc_id))
    return out
