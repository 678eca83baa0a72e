"""Both dedup engines (datasketch in one process, datatrove's stages on an executor) on the same
real documents with planted near- and exact duplicates: recall, no false positive, same survivors."""
from __future__ import annotations

import dataclasses

import pytest

from lmforge.testing.curate import fortune_docs, jsonl_docs


@pytest.fixture(scope="module")
def corpus():
    """Originals in source `a` (two kept files), copies in the later source `b` (one file)."""
    from lmforge.curation.dedup import plant_near_duplicates

    originals = [(d["id"], d["text"]) for d in jsonl_docs() + fortune_docs()]
    planted = plant_near_duplicates(originals, n=25, seed=7)
    exact = [("exact-copy", originals[3][1].upper()), ("exact-copy-2", "  " + originals[5][1])]
    copies = [(i, t) for i, t, _ in planted] + exact
    half = len(originals) // 2
    files = {("a", 0): originals[:half], ("a", 1): originals[half:], ("b", 0): copies}
    truth = {i: o for i, _, o in planted} | {"exact-copy": originals[3][0], "exact-copy-2": originals[5][0]}
    return files, originals, truth


def write_kept(work, files) -> list[tuple[str, int, int]]:
    """The kept Parquet files shard tasks would write; returns the shard task list."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lmforge.curation.work import work_schema
    from lmforge.curation.dedup_datatrove import kept_file

    tasks = []
    for (source, r), docs in files.items():
        path = kept_file(str(work), source, r)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [{"id": i, "url": None, "source": source, "language": "en", "language_score": 1.0, "text": t,
                 "reason": None, "duplicate_of": None} for i, t in docs]
        pq.write_table(pa.Table.from_pylist(rows, schema=work_schema()), path)
        tasks.append((source, r, sum(1 for s, _ in files if s == source)))
    return tasks


def datatrove_decisions(params, work, files) -> dict:
    from datatrove.executor import LocalPipelineExecutor

    from lmforge.curation.dedup_datatrove import Decisions, stages

    tasks = write_kept(work, files)
    for name, pipeline, n in stages(params, tasks, str(work)):
        LocalPipelineExecutor(pipeline, tasks=n, workers=1, logging_dir=str(work / "logs" / name),
                              skip_completed=False).run()
    d = Decisions(work)
    return {i: d.add(i, t) for docs in files.values() for i, t in docs}


def datasketch_decisions(params, files) -> dict:
    from lmforge.curation.dedup import dedup

    ordered = [(i, t) for key in sorted(files) for i, t in sorted(files[key])]  # source, then id
    return {d.id: d for d in dedup(ordered, params)}


def test_both_engines_find_the_planted_duplicates_and_agree(cfg, corpus, tmp_path):
    files, originals, truth = corpus
    params = dataclasses.replace(cfg.dedup, engine="datatrove")
    by_engine = {"datasketch": datasketch_decisions(cfg.dedup, files),
                 "datatrove": datatrove_decisions(params, tmp_path, files)}
    for engine, out in by_engine.items():
        assert not [i for i, _ in originals if out[i].reason], f"{engine}: an original was flagged"
        found = [i for i, o in truth.items() if out[i].reason and out[i].duplicate_of == o]
        assert len(found) / len(truth) >= 0.95, engine
        assert out["exact-copy"].reason == out["exact-copy-2"].reason == "exact_dedup", engine
        assert all(out[i].similarity >= cfg.dedup.threshold for i in found), engine
    a, b = by_engine["datasketch"], by_engine["datatrove"]
    assert {i for i in a if a[i].reason is None} == {i for i in b if b[i].reason is None}
    assert {i: (d.reason, d.duplicate_of, d.similarity) for i, d in a.items()} == \
        {i: (d.reason, d.duplicate_of, d.similarity) for i, d in b.items()}


def test_the_earlier_source_wins_under_datatrove(cfg, corpus, tmp_path):
    files, originals, truth = corpus
    swapped = {("a", 0): files[("b", 0)], ("b", 0): files[("a", 0)], ("b", 1): files[("a", 1)]}
    out = datatrove_decisions(dataclasses.replace(cfg.dedup, engine="datatrove"), tmp_path, swapped)
    copy_of = {o: c for c, o in truth.items()}  # the originals are now the later documents
    flipped = [o for o, c in copy_of.items() if out[o].duplicate_of == c]
    assert len(flipped) / len(copy_of) >= 0.95


def test_datatrove_engine_needs_num_perm_equal_to_bands_times_rows(params):
    from lmforge.config import ParamsError, section
    from lmforge.curation.curate_config import DataConfig

    bad = {**params["data"], "dedup": {**params["data"]["dedup"], "engine": "datatrove", "num_perm": 128, "bands": 14, "rows": 8}}
    with pytest.raises(ParamsError, match=r"data\.dedup: engine datatrove stores bands\*rows = 112"):
        section(DataConfig, "data", params={"data": bad})
