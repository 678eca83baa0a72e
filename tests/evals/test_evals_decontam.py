"""Decontamination: crawl documents that carry an eval item are dropped by curation with reason
``decontamination:<set>``, counted per eval set; every other document is curated as before."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from lmforge.decontam import NgramIndex, load_index, read_jsonl

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "evals" / "data"


def test_index_matches_normalised_ngrams_and_short_items_whole():
    idx = NgramIndex(ngram=5, min_words=3)
    idx.add("a", "The Quick brown fox jumps over the lazy dog")
    idx.add("b", "copy files and directories")
    idx.add("c", "too short")
    assert idx.match("...the QUICK, brown  fox -- jumps! again") == "a"
    assert idx.match("cp: Copy files, and directories.") == "b"
    assert idx.match("quick brown fox jumps") is None and idx.match("too short") is None
    assert idx.items == {"a": 1, "b": 1} and idx.skipped == {"c": 1}


def _planted() -> dict[str, str]:
    """One text per eval set that a crawl document could carry."""
    mc = next(r["decontam_text"] for r in read_jsonl(DATA / "manpages_mc.jsonl") if len(r["decontam_text"].split()) >= 9)
    doc = read_jsonl(DATA / "docstrings_mc.jsonl")
    ds = next(r["decontam_text"] for r in doc if len(r["decontam_text"].split()) >= 9)
    bpb = " ".join(read_jsonl(DATA / "pydoc_bpb.jsonl")[3]["text"].split()[40:60])
    refusal = read_jsonl(DATA / "refusal.jsonl")[0]["prompt"]
    return {"manpages_mc": mc, "docstrings_mc": ds, "pydoc_bpb": bpb, "refusal": refusal}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Curate (the real pipeline) a shard of clean sample documents plus copies carrying eval
    text, with decontamination on and off."""
    import pyarrow.parquet as pq

    from lmforge.config import load_params, section
    from lmforge.curation.curate import CurateOutputs, run_curate
    from lmforge.curation.curate_config import DataConfig

    tmp = tmp_path_factory.mktemp("decont")
    cfg = section(DataConfig, "data", load_params(REPO / "params.yaml"))
    index = load_index(str(DATA))
    docs = [json.loads(line) for line in (REPO / "data/sample/crawl/pydoc-rst-00000.jsonl").read_text().splitlines()]
    ok = [d for d in docs if index.match(d["text"]) is None and 3000 < len(d["text"]) < 30000]
    clean, hosts = ok[:8], ok[8:]   # planted text goes into other pages: no near-duplicates of clean ones
    planted = {f"planted-{s}": (s, hosts[i]["text"] + f"\n\nAs the manual says: {t}.\n")
               for i, (s, t) in enumerate(_planted().items())}
    rows = clean + [{"id": k, "url": f"https://example.org/{k}", "text": text} for k, (_, text) in planted.items()]
    shard = tmp / "in" / "rst-00000.jsonl"
    shard.parent.mkdir(parents=True)
    shard.write_text("".join(json.dumps(r) + "\n" for r in rows))
    src = dataclasses.replace(cfg.sources[2], path=str(shard))
    out = {}
    for on in (True, False):
        c = dataclasses.replace(cfg, sources=[src], workers=1, review_labels=None, cache_dir=None,
                                decontamination=dataclasses.replace(cfg.decontamination, enabled=on,
                                                                    eval_data=str(DATA)))
        d = tmp / ("on" if on else "off")
        o = CurateOutputs(d / "curated", d / "rejected", d / "curate.json", d / "funnel.csv")
        metrics = run_curate(c, o)
        out[on] = dict(metrics=metrics, curated=pq.read_table(o.curated).to_pandas(),
                       rejected=pq.read_table(o.rejected).to_pandas())
    return out, planted, clean


def test_planted_documents_are_dropped_and_nothing_else(runs):
    out, planted, clean = runs
    on, off = out[True], out[False]
    assert set(planted) <= set(off["curated"].id)   # they pass every other step
    dec = on["rejected"][on["rejected"].reason.str.startswith("decontamination")]
    assert dict(zip(dec.id, dec.reason)) == {k: f"decontamination:{s}" for k, (s, _) in planted.items()}
    assert set(on["curated"].id) == set(off["curated"].id) - set(planted)
    assert set(on["curated"].id) & {d["id"] for d in clean}   # clean documents are still curated


def test_decontamination_is_reported_per_eval_set(runs):
    out, planted, _ = runs
    m = out[True]["metrics"]
    d = m["decontamination"]
    assert d["dropped"] == len(planted) and d["ngram"] == 13
    assert {s: v["dropped"] for s, v in d["by_eval_set"].items()} == {s: 1 for s, _ in planted.values()}
    assert m["steps"]["decontamination"]["dropped"] == {f"decontamination:{s}": 1 for s, _ in planted.values()}
    assert m["funnel"]["decontamination"] == m["curated"]["documents"] == m["funnel"]["review"] - len(planted)
    assert m["rejected"]["by_reason"]["decontamination"] == len(planted)
    assert out[False]["metrics"]["decontamination"] == {"enabled": False}
