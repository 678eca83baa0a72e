"""One run of the real curate pipeline (datatrove, 2 workers) over a small subset of the sample,
plus the Slurm executor build and the atomicity of the global step."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from lmforge.testing.curate import HANDBOOK, REPO, SAMPLE, fortune_docs, truncated, write_warc

PYDOC = ["https://docs.python.org/3.11/c-api/dict.html", "https://docs.python.org/3.11/library/queue.html"]
HUGE = "Plain words in a plain sentence. " * 70_000   # 2.3 MB > data.max_doc_bytes (2 MB)


def killed_run_work(data) -> "os.PathLike":
    """The work folder of a curate run killed with SIGKILL (a real run of the locking code)."""
    code = ("import sys, time; from pathlib import Path; from lmforge.curation.curate import work_dir\n"
            "with work_dir(Path(sys.argv[1])) as w:\n    print(w, flush=True); time.sleep(300)")
    p = subprocess.Popen([sys.executable, "-c", code, str(data)], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    work = p.stdout.readline().strip()
    p.send_signal(signal.SIGKILL)
    p.wait()
    return work


@pytest.fixture(scope="module")
def run(cfg, pages, tmp_path_factory):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lmforge.curation.curate import CurateOutputs, run_curate
    from lmforge.curation.curate_config import SourceConfig
    from lmforge.curation.finalize import BadInputWarning

    tmp = tmp_path_factory.mktemp("e2e")
    both = sorted(u.split("/")[-1] for u in pages if "/da-DK/" in u
                  and HANDBOOK.format("en-US", u.split("/")[-1]) in pages)[:3]
    urls = ([HANDBOOK.format("en-US", p) for p in ("sect.apt-frontends.html", "index.html", "sect.kali.html")]
            + [HANDBOOK.format(loc, p) for p in both for loc in ("en-US", "da-DK")]   # untranslated copies
            + [HANDBOOK.format("de-DE", "sect.backup.html"), HANDBOOK.format("ru-RU", "sect.apt-frontends.html")]
            + [u for u in PYDOC if u in pages])
    write_warc(tmp / "in" / "web-00000.warc.gz", [(u, pages[u]) for u in urls])
    others = [u for u in pages if "/en-US/" in u and u not in urls][:6]
    full = write_warc(tmp / "cut" / "w.warc.gz", [(u, pages[u]) for u in others]).read_bytes()
    (tmp / "in" / "web-00001.warc.gz").write_bytes(truncated(full, 0.6))
    lines = (SAMPLE / "pydoc-rst-00000.jsonl").read_text().splitlines()[:6]
    odd = [json.dumps({"id": "int-text", "text": 12345}), json.dumps({"id": "huge", "text": HUGE})]
    (tmp / "in" / "rst.jsonl").write_text("\n".join(lines[:3] + ["{not json"] + lines[3:] + odd) + "\n")
    pq.write_table(pa.Table.from_pylist(fortune_docs()[:8]), tmp / "in" / "fortunes.parquet")
    srcs = [SourceConfig("web", str(tmp / "in" / "web-*.warc.gz"), "warc"),
            dataclasses.replace(cfg.sources[2], path=str(tmp / "in" / "rst.jsonl")),
            SourceConfig("fortunes", str(tmp / "in" / "fortunes.parquet"), "parquet")]
    # a reviewer dropped one page on the review page; harvest wrote the label (plus a superseded one)
    import uuid

    reviewed = HANDBOOK.format("en-US", "sect.apt-frontends.html")
    rid = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, reviewed)}"
    labels = tmp / "review_labels.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": rid, "label": "keep"}, {"id": rid, "label": "drop"}]), labels)
    c = dataclasses.replace(cfg, sources=srcs, workers=2, review_labels=str(labels), cache_dir=str(tmp / "cache"))
    out = CurateOutputs(tmp / "data" / "curated", tmp / "data" / "rejected",
                        tmp / "metrics" / "curate.json", tmp / "metrics" / "funnel.csv")
    from lmforge.curation.curate import work_dir

    killed = killed_run_work(tmp / "data")
    legacy = tmp / "data" / ".curate-work-legacy"  # left by a run before work folders were locked
    (legacy / "web").mkdir(parents=True)
    os.utime(legacy, (time.time() - 3600,) * 2)
    with work_dir(tmp / "data") as live, pytest.warns(BadInputWarning) as caught:
        metrics = run_curate(c, out)
        work = dict(killed=os.path.exists(killed), legacy=legacy.exists(), live=live.exists())
    curated = pq.read_table(out.curated).to_pandas()
    rejected = pq.read_table(out.rejected).to_pandas()
    again = CurateOutputs(*(tmp / "again" / p.name for p in (out.curated, out.rejected, out.metrics, out.funnel)))
    with pytest.warns(BadInputWarning) as caught_again:   # every shard from the cache this time
        rerun = run_curate(c, again)
    return dict(metrics=metrics, curated=curated, rejected=rejected, out=out, tmp=tmp, n_web=len(urls), reviewed=reviewed,
                warnings=[str(w.message) for w in caught], config=c, work=work, again=again, rerun=rerun,
                warnings_again=[str(w.message) for w in caught_again if w.category is BadInputWarning])


def test_curated_plus_rejected_add_up_to_input(run):
    m, cur, rej = run["metrics"], run["curated"], run["rejected"]
    n_in = run["n_web"] + 6 + 1 + 8   # + the too-large document (read, then rejected)
    assert n_in < m["input"]["documents"] < n_in + 6      # part of the truncated shard was read
    assert len(cur) + len(rej) == m["input"]["documents"]
    assert m["curated"]["documents"] == len(cur) and m["rejected"]["documents"] == len(rej)
    assert set(cur.id).isdisjoint(rej.id) and cur.id.is_unique


def test_outputs_follow_the_contract(run):
    cur, rej = run["curated"], run["rejected"]
    assert list(cur.columns)[:7] == ["id", "url", "source", "language", "language_score", "text", "split"]
    assert set(cur.split) <= {"train", "val"} and set(cur.language) <= {"en", "de", "fr", "es"}
    assert {"reason", "duplicate_of"} <= set(rej.columns) and rej.reason.notna().all()
    steps = {"read", "extract", "url_filter", "language", "gopher_repetition", "gopher_quality", "c4_quality",
             "fineweb_quality", "exact_dedup", "near_dedup", "duplicate_id", "review"}
    assert {r.split(":")[0] for r in rej.reason} <= steps
    dups = rej[rej.reason.isin(["exact_dedup", "near_dedup"])]
    assert len(dups) >= 1 and dups.duplicate_of.isin(cur.id).all()   # the da-DK copies point at kept pages
    assert (rej[~rej.reason.isin(["exact_dedup", "near_dedup"])].duplicate_of.isna()).all()
    reasons = dict(zip(rej.url, rej.reason))
    assert reasons[HANDBOOK.format("en-US", "sect.kali.html")] == "gopher_quality:gopher_short_doc"
    assert HANDBOOK.format("en-US", "index.html") in set(cur.url)  # title page kept; its table of contents skipped
    assert reasons[HANDBOOK.format("ru-RU", "sect.apt-frontends.html")] == "language:not_allowed_ru"
    emails = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
    assert all(e.split("@")[1] in ("example.com", "example.org") for t in cur.text for e in emails.findall(t))


def test_review_drop_label_rejects_the_document(run):
    rej, m = run["rejected"], run["metrics"]
    assert dict(zip(rej.url, rej.reason))[run["reviewed"]] == "review"
    assert run["reviewed"] not in set(run["curated"].url)
    assert m["steps"]["review"] == {"in": m["funnel"]["near_dedup"], "kept": m["funnel"]["near_dedup"] - 1,
                                    "dropped": {"review": 1}}
    assert m["funnel"]["review"] == m["curated"]["documents"]


def test_bad_input_counted_and_warned(run):
    m = run["metrics"]["input"]
    assert m["corrupt_files"] == 1 and m["corrupt_records"] == 2
    assert sorted(f.split("/")[-1] for f in m["bad_files"]) == ["rst.jsonl", "web-00001.warc.gz"]
    assert any("web-00001.warc.gz: corrupt file skipped (EOFError" in w for w in run["warnings"])
    assert any("rst.jsonl: corrupt record at record 3 skipped" in w for w in run["warnings"])
    assert any("rst.jsonl: corrupt record at record 7 skipped (TypeError: 'text' must be a string, got int)" in w
               for w in run["warnings"])


def test_a_too_large_document_is_rejected_before_extraction(run):
    m, rej = run["metrics"], run["rejected"]
    assert m["input"]["too_large"] == 1
    assert m["steps"]["read"]["dropped"] == {"too_large": 1} and m["rejected"]["by_reason"]["read"] == 1
    row = rej[rej.reason == "read:too_large"]
    assert row.id.tolist() == ["huge"] and row.source.tolist() == ["pydoc_rst"] and row.text.tolist() == [""]


def test_work_folders_of_killed_runs_are_removed_and_live_ones_kept(run):
    assert run["work"] == {"killed": False, "legacy": False, "live": True}


def test_funnel_metrics_and_plot(run):
    m, out = run["metrics"], run["out"]
    on_disk = json.loads(out.metrics.read_text())
    assert on_disk["funnel"] == m["funnel"]
    rows = out.funnel.read_text().splitlines()
    assert rows[0] == "step,documents" and rows[1].startswith("read,")
    counts = [int(r.split(",")[1]) for r in rows[1:]]
    assert counts == sorted(counts, reverse=True) and counts[-1] == m["curated"]["documents"]
    for name, step in m["steps"].items():
        assert step["in"] - step["kept"] == sum(step["dropped"].values()), name
    assert not list(run["tmp"].glob("data/.curate-work-*")), "temporary work folder left behind"


def test_a_rerun_from_the_shard_cache_gives_the_same_outputs_and_warnings(run):
    out, again = run["out"], run["again"]
    assert run["rerun"]["shards"]["processed"] == [] and len(run["rerun"]["shards"]["cached"]) == 4
    for a, b in ((out.curated, again.curated), (out.rejected, again.rejected)):
        assert {p.name: p.read_bytes() for p in a.iterdir()} == {p.name: p.read_bytes() for p in b.iterdir()}
    assert out.metrics.read_text() == again.metrics.read_text()
    assert run["warnings_again"] and \
        sorted(run["warnings_again"]) == sorted(w for w in run["warnings"] if " skipped " in w)


def test_slurm_executor_builds(run, tmp_path):
    from datatrove.executor import SlurmPipelineExecutor

    from lmforge.curation.curate import CurateOutputs, build_executors, plan

    c = run["config"]
    c = dataclasses.replace(c, slurm=dataclasses.replace(c.slurm, partition="cpu"))   # no sinfo needed
    execs = build_executors(c, plan(c), tmp_path / "work", CurateOutputs(), executor="slurm")
    assert all(isinstance(e, SlurmPipelineExecutor) for e in execs) and len(execs) == 2
    shards, fin = execs
    assert shards.world_size == 2 + 1 + 1 and fin.world_size == 1 and fin.depends is shards
    script = shards.get_launch_file_contents(shards.get_sbatch_args(shards.world_size), "srun python run.py")
    assert "#SBATCH --partition=cpu" in script and "#SBATCH --array=0-3" in script
    assert "OMP_NUM_THREADS=1" in script


def test_failed_global_step_leaves_previous_outputs(run, monkeypatch, tmp_path):
    import pyarrow.parquet as pq

    from lmforge.curation import finalize as fz
    from lmforge.curation.dedup import Deduplicator
    from support.curate_work import write_work

    out = run["out"]
    before = {p.name: p.read_bytes() for p in out.rejected.iterdir()}
    texts = pq.read_table(next(out.curated.glob("web-*.parquet"))).column("text").to_pylist()
    write_work(tmp_path, run["config"], "web", texts, shards=1, kept_share=1.0)

    def boom(self, doc_id, sketch):
        raise RuntimeError("boom")

    monkeypatch.setattr(Deduplicator, "add_sketch", boom)
    monkeypatch.setattr(fz, "check_inputs", lambda *a: None)  # this work folder holds one source only
    with pytest.raises(RuntimeError, match="boom"):
        fz.finalize(run["config"], tmp_path, out.curated, out.rejected, out.metrics, out.funnel)
    assert {p.name: p.read_bytes() for p in out.rejected.iterdir()} == before
    assert not [p for p in out.curated.parent.iterdir() if p.name.endswith(".tmp")]
