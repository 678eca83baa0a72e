"""Dedup on datatrove's own stages (``data.dedup.engine: datatrove``): the path past one machine.

Why: the datasketch engine (``lmforge.curation.dedup``) holds every kept document's MinHash in one
process's LSH (about 5.6 KB per document). datatrove writes signatures to disk per task and
finds colliding bands with a sorted merge per band, so each stage runs as many tasks on the
curate executor (local, Slurm or Ray) and no process holds the index. The stages:

1. ``dedup-signatures``, one task per shard task: reads that task's kept Parquet file and runs
   datatrove's ``ExactDedupSignature`` (hash of the normalised text) and
   ``MinhashDedupSignature`` (``bands`` x ``rows`` hashes of ``shingle_size``-word shingles);
2. ``dedup-buckets``, one task per band: datatrove's ``MinhashDedupBuckets`` writes the pairs
   of documents whose band signatures are equal;
3. ``dedup-resolve``, one task: ``ResolveDuplicates`` below turns hashes and pairs into one
   decision per document, kept as ``decisions.parquet`` (id, reason, duplicate_of, similarity)
   that ``finalize`` applies.

Step 3 replaces datatrove's ``MinhashDedupCluster``/``Filter`` and its exact ``FindDedups``,
because those keep the contract of neither engine: the cluster root is chosen by union-by-size,
not by priority, a pair counts from one shared band whatever its similarity, and the exact
finder writes which document to drop but not the one it duplicates. Here, as in the datasketch
engine, documents go in priority order (earlier source, then URL, then id); a document whose
normalised text equals an earlier one's is ``exact_dedup``; otherwise its candidates are the
earlier *kept* documents that share a band with it, and the best one counts only when the
share of equal MinHash values (over all ``bands*rows``) is at least ``threshold``. Memory of
step 3: ids and sort keys of all kept documents plus the signatures of documents that share
a band with another (no texts).
"""
from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path

import numpy as np
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.exact_dedup import ExactDedupConfig, ExactDedupSignature, get_sig_dtype
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupSignature)
from datatrove.utils.hashing import HashConfig

from lmforge.curation import dependency_check  # noqa: F401  (datatrove's step checks, without a scan)
from lmforge.curation.curate_config import DedupConfig
from lmforge.curation.dedup import Decision, Deduplicator, words

HASH = HashConfig(precision=64, hash_fc="xxhash")      # exact: hashes the normalised text's bytes
SIG_HASH = HashConfig(precision=32, hash_fc="sha1")  # MinHash values are datasketch's (uint32)
DECISIONS = "decisions.parquet"


def normalised(doc: Document) -> bytes:
    """The text exact dedup compares: lower case, word characters only (as the datasketch engine)."""
    return " ".join(words(doc.text)).encode()


def minhash_config(p: DedupConfig) -> MinhashConfig:
    return MinhashConfig(n_grams=p.shingle_size, num_buckets=p.bands, hashes_per_bucket=p.rows, seed=p.seed,
                         hash_config=SIG_HASH)


def kept_file(work: str, source: str, local_rank: int) -> Path:
    """The kept-documents Parquet file one shard task writes (``WorkWriter``, ``${rank}.parquet``)."""
    return Path(work) / source / "kept" / f"{local_rank:05d}.parquet"


class KeptReader(PipelineStep):
    """Task ``rank`` reads the kept file of shard task ``rank``: every row, in file order."""

    type = "📖 - READER"
    name = "dedup_read"

    def __init__(self, tasks: list[tuple[str, int, int]], work: str):
        super().__init__()
        self.tasks, self.work = tasks, work

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        import pyarrow.parquet as pq

        source, local_rank, _ = self.tasks[rank]
        path = kept_file(self.work, source, local_rank)
        if not path.exists():
            return
        for batch in pq.ParquetFile(path).iter_batches(columns=["id", "text"], batch_size=1024):
            for row in batch.to_pylist():
                self.stat_update("documents")
                yield Document(text=row["text"] or "", id=row["id"])


class ExactSignatureTee(ExactDedupSignature):
    """datatrove's exact-dedup signatures, passing every document on to the MinHash step."""

    def run(self, data, rank: int = 0, world_size: int = 1):
        signatures = []
        for doc_idx, doc in enumerate(data):
            self.stat_update("total")
            signatures.extend(self.get_hashes(doc, doc_idx))
            yield doc
        self.save_hashes(rank, signatures)


class SharedSignature(MinhashDedupSignature):
    """datatrove's signature stage computing the datasketch engine's MinHash (same shingles, hash
    and permutations), so both engines see the same signatures and bands and decide alike."""

    def __init__(self, output_folder: str, p: DedupConfig):
        super().__init__(output_folder, config=minhash_config(p))
        self.p, self._dd = p, None

    def get_shingles(self, text: str) -> np.ndarray:
        """The document's MinHash values (datatrove calls them shingles; empty text: none)."""
        ws = words(text)
        if not ws:
            return np.empty((0, 1), np.uint64)
        if self._dd is None:
            self._dd = Deduplicator(self.p)
        return self._dd.signature(ws).hashvalues[: self.num_hashes]

    def get_signature(self, hashvalues: np.ndarray) -> list[list[int]]:
        return [x.tolist() for x in np.split(hashvalues.astype(SIG_HASH.np_dtype), self.config.num_buckets)]


def stages(p: DedupConfig, tasks: list[tuple[str, int, int]], work: str) -> list[tuple[str, list, int]]:
    """``(name, pipeline, number of tasks)`` for each dedup stage, in order."""
    d = f"{work}/dedup"
    mh = minhash_config(p)
    exact = ExactDedupConfig(content_getter=normalised, hash_config=HASH)
    sign = [KeptReader(tasks, work), ExactSignatureTee(f"{d}/exact", exact),
            SharedSignature(f"{d}/sigs", p)]
    return [("dedup-signatures", sign, len(tasks)),
            ("dedup-buckets", [MinhashDedupBuckets(f"{d}/sigs", f"{d}/buckets", config=mh)], mh.num_buckets),
            ("dedup-resolve", [ResolveDuplicates(p, tasks, work)], 1)]


class ResolveDuplicates(PipelineStep):
    """Exact and confirmed near duplicates, earlier document wins: writes ``decisions.parquet``."""

    type = "🫂 - DEDUP"
    name = "dedup_resolve"

    def __init__(self, p: DedupConfig, tasks: list[tuple[str, int, int]], work: str):
        super().__init__()
        self.p, self.tasks, self.work = p, tasks, work

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if data:
            yield from data
        import pyarrow as pa
        import pyarrow.parquet as pq

        from lmforge.io import atomic_path

        order, ids = self.document_order()
        decisions = resolve(self.p, order, ids, Path(self.work) / "dedup", len(self.tasks))
        for d in decisions:
            self.stat_update(d.reason or "kept")
        table = pa.table({"id": [d.id for d in decisions], "reason": [d.reason for d in decisions],
                          "duplicate_of": [d.duplicate_of for d in decisions],
                          "similarity": pa.array([d.similarity for d in decisions], pa.float64())})
        with atomic_path(Path(self.work) / "dedup" / DECISIONS) as tmp:
            pq.write_table(table, tmp)

    def document_order(self) -> tuple[list[tuple[int, int]], dict[tuple[int, int], str]]:
        """Every (task, row) in priority order, first occurrence of each id only; and their ids."""
        import pyarrow.parquet as pq

        sources = list(dict.fromkeys(s for s, _, _ in self.tasks))
        keys, ids = [], {}
        for t, (source, local_rank, _) in enumerate(self.tasks):
            path = kept_file(self.work, source, local_rank)
            if not path.exists():
                continue
            cols = pq.read_table(path, columns=["id", "url"]).to_pydict()
            for row, (i, url) in enumerate(zip(cols["id"], cols["url"])):
                keys.append(((sources.index(source), url or "", i), (t, row)))
                ids[(t, row)] = i
        keys.sort()
        seen, order = set(), []
        for (_, _, i), doc in keys:
            if i not in seen:  # a repeated id is finalize's `duplicate_id`, not dedup's
                seen.add(i)
                order.append(doc)
        return order, ids


def read_exact(folder: Path, n_tasks: int) -> dict[tuple[int, int], int]:
    """(task, row) -> hash of its normalised text, from ``ExactDedupSignature``'s files."""
    dtype = get_sig_dtype(HASH)
    out = {}
    for t in range(n_tasks):
        f = folder / "0000" / f"{t:05d}.c4_sig"
        if f.exists():
            for h, _, row in np.fromfile(f, dtype=dtype).tolist():
                out[(t, row)] = h
    return out


def read_band_groups(folder: Path, bands: int) -> list[list[tuple[int, int]]]:
    """Groups of documents whose signatures are equal in one band.

    ``MinhashDedupBuckets`` writes, per band, a chain of pairs through each group of equal
    band signatures (a-b, b-c, ...): a union-find per band turns the chains back into groups.
    """
    groups = []
    for b in range(bands):
        parent: dict = {}

        def find(x):
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for f in sorted(folder.glob(f"{b:05d}_*.dups")):
            for f1, d1, f2, d2 in struct.iter_unpack("<4I", f.read_bytes()):
                parent[find((f1, d1))] = find((f2, d2))
        members = defaultdict(list)
        for x in parent:
            members[find(x)].append(x)
        groups.extend(m for m in members.values() if len(m) > 1)
    return groups


def read_signatures(folder: Path, bands: int, rows: int, wanted: set[tuple[int, int]]) -> dict:
    """(task, row) -> its full MinHash signature (``bands*rows`` values), for ``wanted`` only."""
    dtype = np.dtype([("h", SIG_HASH.np_dtype, (rows,)), ("doc", "<u4")])
    sigs: dict[tuple[int, int], np.ndarray] = {}
    by_task = defaultdict(set)
    for t, row in wanted:
        by_task[t].add(row)
    for t, rows_wanted in by_task.items():
        for b in range(bands):
            rec = np.fromfile(folder / f"bucket_{b:03d}" / f"{t:05d}.minhash.sig", dtype=dtype)
            for h, row in zip(rec["h"], rec["doc"].tolist()):
                if row in rows_wanted:
                    sigs.setdefault((t, row), np.zeros(bands * rows, SIG_HASH.np_dtype))[b * rows:(b + 1) * rows] = h
    return sigs


def resolve(p: DedupConfig, order: list[tuple[int, int]], ids: dict, folder: Path, n_tasks: int) -> list[Decision]:
    """One Decision per document of ``order`` (priority order), as the datasketch engine decides."""
    exact = read_exact(folder / "exact", n_tasks) if p.exact else {}
    groups = read_band_groups(folder / "buckets", p.bands) if p.near else []
    member_of = defaultdict(list)
    for g, members in enumerate(groups):
        for m in members:
            member_of[m].append(g)
    sigs = read_signatures(folder / "sigs", p.bands, p.rows, set(member_of)) if groups else {}
    first_text, kept, out = {}, set(), []
    for doc in order:
        h = exact.get(doc)
        if h is not None and h in first_text:
            out.append(Decision(ids[doc], "exact_dedup", ids[first_text[h]], 1.0))
            continue
        if h is not None:
            first_text[h] = doc
        best, best_sim = None, 0.0
        for c in {c for g in member_of.get(doc, ()) for c in groups[g] if c in kept}:
            sim = float(np.mean(sigs[doc] == sigs[c]))
            if sim > best_sim or (sim == best_sim and best is not None and ids[c] < ids[best]):
                best, best_sim = c, sim
        if best is not None and best_sim >= p.threshold:
            out.append(Decision(ids[doc], "near_dedup", ids[best], round(best_sim, 4)))
            continue
        kept.add(doc)
        out.append(Decision(ids[doc]))
    return out


class Decisions:
    """The decisions of ``dedup-resolve``, served like ``Deduplicator.add`` so finalize is unchanged."""

    def __init__(self, work: Path):
        import pyarrow.parquet as pq

        path = Path(work) / "dedup" / DECISIONS
        rows = pq.read_table(path).to_pylist() if path.exists() else []
        self.by_id = {r["id"]: Decision(r["id"], r["reason"], r["duplicate_of"], r["similarity"]) for r in rows}
        self.stats = {"documents": 0, "exact_dedup": 0, "near_dedup": 0, "kept": 0}

    def add(self, doc_id: str, text: str) -> Decision:
        d = self.by_id.get(doc_id) or Decision(doc_id)
        self.stats["documents"] += 1
        self.stats[d.reason or "kept"] += 1
        return d

    def add_sketch(self, doc_id: str, sketch) -> Decision:
        """As ``Deduplicator.add_sketch``: the sketch is not needed, the decision was made."""
        return self.add(doc_id, "")
