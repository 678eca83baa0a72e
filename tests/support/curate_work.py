"""Shard-task outputs (a curate work folder) built from synthetic documents, without the filters.

Why: the global curate step's memory must be measured at sizes where running extraction and
filters would take many minutes on two cores. The folder is written by the pipeline's own
writers (``WorkWriter``, ``SignatureWriter``) and sorted as the shard tasks sort it, so only
the filtering itself is skipped. Texts are drawn from the real vocabulary of the sample's
Python documentation, in paragraphs and lines of realistic lengths, with near and exact copies
planted among them, and about 70 % of the documents rejected by filters (as measured on real
crawls).
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

from lmforge.testing.curate import jsonl_docs

FILTER_NAME = "🔻 - FILTER: gopher_quality"


def vocabulary() -> list[str]:
    return sorted({w for d in jsonl_docs() for w in re.findall(r"[A-Za-z]{2,}", d["text"])})


def synthetic_texts(n: int, seed: int = 0, words: int = 600) -> list[str]:
    """``n`` texts of about ``words`` words; every 20th a near copy, every 33rd an exact copy."""
    rng, vocab = random.Random(seed), vocabulary()
    texts: list[str] = []
    for i in range(n):
        if i >= 20 and i % 20 == 0:
            lines = texts[rng.randrange(i)].split("\n")
            lines[rng.randrange(len(lines))] = "This page was mirrored from the original site."
            texts.append("\n".join(lines))
        elif i >= 33 and i % 33 == 0:
            texts.append(texts[rng.randrange(i)])
        else:
            lines = [" ".join(rng.choices(vocab, k=rng.randint(8, 16))) + "." for _ in range(words // 12)]
            texts.append("\n".join(lines))
    return texts


def write_work(work: Path, cfg, source: str, texts: list[str], shards: int, kept_share: float = 0.3,
               seed: int = 0) -> None:
    """Write ``texts`` as ``shards`` shard tasks of ``source`` into the work folder."""
    from datatrove.data import Document

    from lmforge.curation.work import WorkWriter
    from lmforge.curation.signatures import SignatureWriter, sort_task_outputs

    rng, base = random.Random(seed), work / source
    for rank in range(shards):
        part = texts[rank::shards]
        kept = rejected = 0
        with WorkWriter(str(base / "kept")) as kw, SignatureWriter(str(base / "signatures"), cfg.dedup) as sw, \
                WorkWriter(str(base / "rejected" / "gopher_quality"), step="gopher_quality") as rw:
            for i, text in enumerate(part):
                doc = Document(text=text, id=f"{source}-{rank}-{i}",
                               metadata={"url": f"https://example.org/{source}/{rng.random():.12f}",
                                         "source": source, "language": "en", "language_score": 0.99})
                if rng.random() < kept_share:
                    sw.write(doc, rank)
                    kw.write(doc, rank)
                    kept += 1
                else:
                    doc.metadata["filter_reason"] = "gopher_below_alpha_threshold"
                    rw.write(doc, rank)
                    rejected += 1
        sort_task_outputs(base, rank)
        stats = [{"name": "📖 - READER: read", "stats": {"documents": len(part), "forwarded": len(part)}},
                 {"name": FILTER_NAME, "stats": {"forwarded": kept, "dropped": rejected,
                                                 "dropped_gopher_below_alpha_threshold": rejected}}]
        (base / "logs" / "stats").mkdir(parents=True, exist_ok=True)
        (base / "logs" / "stats" / f"{rank:05d}.json").write_text(json.dumps(stats))
