"""Harvest: store → data/feedback (right rows in the right files), GX failure, drift, the stage."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lmforge.checks.runner import DataCheckError
from lmforge.feedback.drift import DriftConfig, drift_report, length_psi, tvd
from lmforge.feedback.harvest import HarvestConfig, run_harvest
from lmforge.feedback.store import FEEDBACK, REQUESTS, REVIEW_LABELS, init_store

REPO = Path(__file__).resolve().parents[2]


def req(rid, prompt, completion, status=200, verdict="allow", ts=1.0, version="m@1", messages=None):
    return {"id": rid, "ts": ts, "route": "/generate", "prompt": prompt, "completion": completion,
            "status": status, "safety": {"verdict": verdict, "categories": [], "pii": []},
            "model_version": version, "messages": messages, "input_tokens": 3, "output_tokens": 4}


def write_store(root: Path, requests=(), feedback=(), labels=(), torn: str | None = None) -> Path:
    init_store(root)
    for name, rows in ((REQUESTS, requests), (FEEDBACK, feedback), (REVIEW_LABELS, labels)):
        with open(root / name, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
            if torn and name == torn:
                f.write('{"id": "torn", "kind": "rat')
    return root


@pytest.fixture(scope="module")
def training(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("instructions_checked")
    pd.DataFrame({"prompt": ["What is Debian?", "What is Perl?", "How do I list files in a directory?"],
                  "response": ["Debian is a free operating system.", "Perl is a language.",
                               "Use ls."], "source": ["t"] * 3}).to_parquet(d / "train.parquet")
    return d


def cfg_for(tmp_path: Path, store: Path, training: Path) -> HarvestConfig:
    return HarvestConfig(store=str(store), instructions=str(training), out=str(tmp_path / "feedback"),
                         gx_dir=str(tmp_path / "gx"))


def test_harvest_of_an_empty_store_writes_three_empty_files_via_the_stage(tmp_path, training):
    """The real stage entry point (`python -m stages.harvest`) on an empty store."""
    init_store(tmp_path / "data" / "feedback_store")
    shutil.copytree(training, tmp_path / "data" / "instructions_checked")
    (tmp_path / "params.yaml").write_text("harvest:\n  drift: {min_requests: 5}\n"
                                          f"data:\n  decontamination: {{eval_data: {REPO / 'evals' / 'data'}}}\n")
    out = subprocess.run([sys.executable, "-m", "stages.harvest"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    for name, cols in (("sft", ["prompt", "completion", "source"]),
                       ("preferences", ["prompt", "chosen", "rejected", "source"]),
                       ("review_labels", ["id", "label"])):
        df = pd.read_parquet(tmp_path / "data" / "feedback" / f"{name}.parquet")
        assert len(df) == 0 and set(cols) <= set(df.columns)
    drift = json.loads((tmp_path / "metrics" / "drift.json").read_text())
    assert drift["retrain_due"] is False and drift["thumbs_down_share"] is None
    assert json.loads((tmp_path / "metrics" / "harvest.json").read_text())["rows"] == {
        "sft": 0, "preferences": 0, "review_labels": 0}
    assert (tmp_path / "metrics" / "gx" / "harvest_sft.json").exists()
    assert len(pd.read_parquet(tmp_path / "data" / "feedback" / "decontaminated_sft.parquet")) == 0


def test_thumbs_up_answers_that_carry_an_eval_item_are_set_aside(tmp_path, training):
    from lmforge.decontam import DecontaminationConfig, read_jsonl

    item = next(r for r in read_jsonl(REPO / "evals/data/manpages_mc.jsonl")
                if len(r["choices"][r["answer"]].split()) >= 9)
    answer = item["choices"][item["answer"]]
    requests = [req("r1", "What is DVC?", "DVC versions data."),
                req("r2", item["question"], f"It does this: {answer}.")]
    feedback = [{"kind": "rating", "request_id": r, "rating": "up"} for r in ("r1", "r2")]
    store = write_store(tmp_path / "store", requests, feedback)
    res = run_harvest(cfg_for(tmp_path, store, training),
                      DecontaminationConfig(eval_data=str(REPO / "evals" / "data")))
    out = tmp_path / "feedback"
    assert pd.read_parquet(out / "sft.parquet").request_id.tolist() == ["r1"]
    gone = pd.read_parquet(out / "decontaminated_sft.parquet")
    assert gone.request_id.tolist() == ["r2"] and gone.reason.tolist() == ["decontamination:manpages_mc"]
    assert res.metrics["rows"]["sft"] == 1 and res.metrics["decontamination"]["dropped"] == 1


def test_harvest_puts_each_kind_of_feedback_in_the_right_file(tmp_path, training):
    requests = [
        req("r1", "What is DVC?", "DVC versions data."),                 # up -> sft
        req("r2", "What is Debian?", "Debian is a free operating system."),  # up, already in training
        req("r3", "What is DVC?", "A kind of cheese."),                  # down + r1 up -> preference
        req("r4", "Name a shell", "bash"),                               # pairwise chosen
        req("r5", "Name a shell", "a seashell"),                         # pairwise rejected
        req("r6", "Mail me at bob@example.com", "ok bob@example.com", verdict="pii"),  # up, PII
        req("r7", "What is git?", "Git is a tool.", status=422),         # failed request
        req("r8", "What is pip?", "A fruit."),                           # down with a correction
        req("r9", "What is tar?", "tar packs files."),                   # up then down: down wins
        req("r10", "Why?", "Because.", messages=[{"role": "user", "content": "Hi"},
                                                 {"role": "assistant", "content": "Hello"},
                                                 {"role": "user", "content": "Why?"}]),
    ]
    feedback = [
        {"kind": "rating", "request_id": "r1", "rating": "up"},
        {"kind": "rating", "request_id": "r2", "rating": "up"},
        {"kind": "rating", "request_id": "r3", "rating": "down"},
        {"kind": "pairwise", "chosen": "r4", "rejected": "r5"},
        {"kind": "pairwise", "chosen": "r4", "rejected": "r5"},          # duplicate choice
        {"kind": "rating", "request_id": "r6", "rating": "up"},
        {"kind": "rating", "request_id": "r8", "rating": "down", "correction": "pip installs packages."},
        {"kind": "rating", "request_id": "r9", "rating": "up"},
        {"kind": "rating", "request_id": "r9", "rating": "down"},
        {"kind": "rating", "request_id": "r10", "rating": "up"},
    ]
    labels = [{"doc_id": "d1", "label": "keep", "set": "rejected", "ts": 1.0},
              {"doc_id": "d2", "label": "drop", "set": "curated", "ts": 2.0},
              {"doc_id": "d1", "label": "drop", "set": "rejected", "ts": 3.0}]
    store = write_store(tmp_path / "store", requests, feedback, labels, torn=FEEDBACK)
    res = run_harvest(cfg_for(tmp_path, store, training))
    out = tmp_path / "feedback"
    sft = pd.read_parquet(out / "sft.parquet")
    assert sft[["prompt", "completion"]].values.tolist() == [["What is DVC?", "DVC versions data."]]
    prefs = pd.read_parquet(out / "preferences.parquet")
    got = {(r.prompt, r.chosen, r.rejected, r.source) for r in prefs.itertuples()}
    assert got == {("Name a shell", "bash", "a seashell", "pairwise"),
                   ("What is DVC?", "DVC versions data.", "A kind of cheese.", "up_vs_down"),
                   ("What is pip?", "pip installs packages.", "A fruit.", "correction")}
    lab = pd.read_parquet(out / "review_labels.parquet")
    assert dict(zip(lab["id"], lab["label"])) == {"d1": "drop", "d2": "drop"}
    steps = res.metrics["steps"]
    assert steps["sft:dropped:in_training_data"] == 1 and steps["sft:dropped:safety_pii"] == 1
    assert steps["sft:dropped:multi_turn"] == 1 and steps["pref:dropped:duplicate"] == 1
    assert steps["pref:dropped:thumbs_down_without_partner"] == 1  # r9: its own up was overridden
    assert res.metrics["torn_tails_skipped"] == [FEEDBACK]
    assert res.metrics["ratings_down"] == 3 and res.new_examples == 4


EMAIL, PHONE, SSN, CARD = "jane.roe@example.net", "+1 415 555 2671", "123-45-6789", "4111 1111 1111 1111"
PERSONAL = f"Write to {EMAIL} or call {PHONE}; my SSN is {SSN} and my card {CARD}."


def pii_store(root: Path) -> Path:
    """Personal data in every place feedback can carry it; each request's logged verdict is `allow`."""
    requests = [req("r1", "What is pip?", "A fruit."),
                req("r2", "What is tar?", "tar packs files."),
                req("r3", "Name a shell", "bash"), req("r4", "Name a shell", "a seashell"),
                req("r5", "Who is on call?", f"Call {PHONE}."),
                req("r6", f"My SSN is {SSN}, what now?", "Keep it private.")]
    feedback = [{"kind": "rating", "request_id": "r1", "rating": "down",
                 "correction": f"pip installs packages. {PERSONAL}"},
                {"kind": "rating", "request_id": "r2", "rating": "up", "comment": f"great! mail me: {EMAIL}"},
                {"kind": "pairwise", "chosen": "r3", "rejected": "r4", "comment": PERSONAL},
                {"kind": "rating", "request_id": "r5", "rating": "up"},
                {"kind": "rating", "request_id": "r6", "rating": "up"}]
    return write_store(root, requests, feedback)


def test_personal_data_in_feedback_never_becomes_training_data(tmp_path, training):
    from lmforge.pii import find_pii

    assert {"email", "payment_card", "phone", "ssn"} <= set(find_pii(PERSONAL))
    res = run_harvest(cfg_for(tmp_path, pii_store(tmp_path / "store"), training))
    assert res.metrics["rows"] == {"sft": 0, "preferences": 0, "review_labels": 0}
    for name in ("sft", "preferences"):
        df = pd.read_parquet(tmp_path / "feedback" / f"{name}.parquet")
        assert not [v for col in df.columns for v in df[col] if isinstance(v, str) and find_pii(v)]
    steps = res.metrics["steps"]
    assert steps["pref:dropped:pii_in_correction"] == 1       # the thumbs-down's correction
    assert steps["pref:dropped:pii_in_comment"] == 1          # the pairwise choice's comment
    assert steps["sft:dropped:pii_in_comment"] == 1           # the thumbs-up's comment
    assert steps["sft:dropped:pii_in_completion"] == 1 and steps["sft:dropped:pii_in_prompt"] == 1
    assert "pref:dropped:thumbs_down_without_partner" not in steps  # it had one: the correction


def test_include_pii_lets_personal_data_through(tmp_path, training):
    import dataclasses

    cfg = dataclasses.replace(cfg_for(tmp_path, pii_store(tmp_path / "store"), training), include_pii=True)
    res = run_harvest(cfg)
    prefs = pd.read_parquet(tmp_path / "feedback" / "preferences.parquet")
    assert set(prefs.source) == {"correction", "pairwise"}
    assert PERSONAL in prefs.set_index("source").chosen["correction"]
    assert set(pd.read_parquet(tmp_path / "feedback" / "sft.parquet").request_id) == {"r2", "r5", "r6"}
    assert not [k for k in res.metrics["steps"] if ":pii_in_" in k]


def test_stage_exits_2_with_one_line_naming_the_file_when_the_store_is_corrupt(tmp_path, training):
    store = write_store(tmp_path / "data" / "feedback_store", [req("r1", "What is DVC?", "DVC versions data.")])
    with open(store / REQUESTS, "a") as f:
        f.write("{not json\n" + json.dumps(req("r2", "Hi", "Hello")) + "\n")
    shutil.copytree(training, tmp_path / "data" / "instructions_checked")
    (tmp_path / "params.yaml").write_text(
        f"harvest: {{}}\ndata:\n  decontamination: {{eval_data: {REPO / 'evals' / 'data'}}}\n")
    out = subprocess.run([sys.executable, "-m", "stages.harvest"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().splitlines() == [out.stderr.strip()]
    assert out.stderr.startswith("harvest: ") and "requests.jsonl:2: not a JSON line" in out.stderr


def test_a_bad_review_label_fails_the_great_expectations_check(tmp_path, training):
    store = write_store(tmp_path / "store", labels=[{"doc_id": "d1", "label": "maybe", "set": "curated"}])
    with pytest.raises(DataCheckError, match=r"expect_column_values_to_be_in_set.*review_labels.jsonl"):
        run_harvest(cfg_for(tmp_path, store, training))
    assert not (tmp_path / "feedback").exists()  # nothing half-written
    assert json.loads((tmp_path / "gx" / "harvest_review_labels.json").read_text())["success"] is False


def test_drift_flags_long_german_unliked_traffic_and_not_familiar_traffic():
    train = ["What is Debian?", "How do I install a package?", "What does ls do in a shell?",
             "How can I read a file in Python?", "What is a virtual environment?"] * 20
    cfg = DriftConfig(min_requests=20)
    same, _ = drift_report(cfg, train, train[:40], ups=30, downs=5, new_examples=3)
    assert same["retrain_due"] is False and same["prompt_length"]["psi"] < 0.1
    assert same["language"]["tvd"] < 0.05 and same["thumbs_down_share"] == pytest.approx(5 / 35)
    german = ["Wie kann ich unter Debian ein Paket installieren und danach alle "
              "Konfigurationsdateien wieder entfernen, ohne das System zu beschädigen?"] * 30
    shifted, hist = drift_report(cfg, train, german, ups=5, downs=15, new_examples=3)
    assert shifted["retrain_due"] is True and len(shifted["reasons"]) == 3
    assert shifted["language"]["live"] == {"de": 1.0} and shifted["language"]["tvd"] > 0.9
    assert shifted["prompt_length"]["psi"] > 1 and sum(r["live_share"] for r in hist) == pytest.approx(1)
    few, _ = drift_report(cfg, train, german[:5], ups=0, downs=5, new_examples=100)
    assert few["enough_traffic"] is False and few["reasons"] == ["100 new examples >= 100"]


def test_psi_and_tvd_basics():
    assert length_psi([1, 2, 3, 4] * 10, [1, 2, 3, 4] * 10)[0] == pytest.approx(0, abs=1e-9)
    assert tvd({"en": 1.0}, {"de": 1.0}) == 1.0


WILD = ["Call me at 4155550100 tonight", "ring 020 7946 0958 or 07911 123456",
        "jane.doe [at] example [dot] com", "bob at gmail dot com", "my box is 2001:db8:85a3::8a2e:370:7334",
        "I live at 742 Evergreen Terrace, Springfield, IL 62704", "NI number AB 12 34 56 C",
        "Musterstraße 12, 10115 Berlin"]


def test_personal_data_in_formats_from_the_wild_never_becomes_training_data(tmp_path, training):
    """Thumbs-ups on prompts with phones, obfuscated e-mails, IPv6, addresses, national IDs (each
    logged as `allow` by an older detector) and a correction with two phone numbers."""
    from lmforge.pii import find_pii

    requests = [req(f"w{i}", text, "Noted.") for i, text in enumerate(WILD)]
    requests += [req("q1", "What is pip?", "A fruit.")]
    feedback = [{"kind": "rating", "request_id": f"w{i}", "rating": "up"} for i in range(len(WILD))]
    feedback += [{"kind": "rating", "request_id": "q1", "rating": "down",
                  "correction": "pip installs packages; ask 4155550100 or +44 20 7946 0958"}]
    res = run_harvest(cfg_for(tmp_path, write_store(tmp_path / "store", requests, feedback), training))
    assert res.metrics["rows"]["sft"] == 0 and res.metrics["rows"]["preferences"] == 0
    for name in ("sft", "preferences"):
        df = pd.read_parquet(tmp_path / "feedback" / f"{name}.parquet")
        assert not [v for col in df.columns for v in df[col] if isinstance(v, str) and find_pii(v)]
    assert res.metrics["steps"]["sft:dropped:pii_in_prompt"] == len(WILD)
    assert res.metrics["steps"]["pref:dropped:pii_in_correction"] == 1
