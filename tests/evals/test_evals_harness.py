"""lm-evaluation-harness runs lmforge's tasks offline on a tiny random Llama, and the stage
writes the flat, reproducible metrics file that `dvc metrics diff` compares."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lmforge.evals.harness import EvalsConfig, evaluate

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scores(tiny_model):
    return evaluate(str(tiny_model), EvalsConfig(limit=4))


def test_every_task_returns_its_metrics(scores):
    assert set(scores) == {"lmforge_manpages_mc", "lmforge_docstrings_mc", "lmforge_pydoc_bpb", "lmforge_refusal"}
    for task in ("lmforge_manpages_mc", "lmforge_docstrings_mc"):
        assert scores[task]["n"] == 4 and 0.0 <= scores[task]["acc"] <= 1.0 and 0.0 <= scores[task]["acc_norm"] <= 1.0
    bpb = scores["lmforge_pydoc_bpb"]
    assert bpb["n"] == 4 and 1.0 < bpb["bits_per_byte"] < 20.0   # a random model: several bits per byte
    assert bpb["byte_perplexity"] == pytest.approx(2 ** bpb["bits_per_byte"], rel=1e-6)
    assert scores["lmforge_refusal"]["n"] == 4 and scores["lmforge_refusal"]["refusal_rate"] in (0.0, 0.25, 0.5, 0.75, 1.0)


def test_accuracies_come_with_their_standard_error_and_chance_level(scores):
    for task in ("lmforge_manpages_mc", "lmforge_docstrings_mc"):
        s = scores[task]
        p = s["acc"]   # lm-eval's closed form for a mean: sample std / sqrt(n)
        assert s["acc_stderr"] == pytest.approx((p * (1 - p) * 4 / 3) ** 0.5 / 2, abs=1e-9)
        assert s["chance"] == pytest.approx(0.25)   # four choices per item
    assert "chance" not in scores["lmforge_pydoc_bpb"]


def test_limit_is_a_fixed_random_subset_not_the_first_items():
    from lm_eval.tasks import TaskManager

    from lmforge.evals.harness import subsets

    tm = TaskManager(include_path=str(REPO / "evals" / "tasks"), include_defaults=False)
    tasks = tm.load(["lmforge_manpages_mc", "lmforge_docstrings_mc"])["tasks"]
    a, b = subsets(tasks, 50, 0), subsets(tasks, 50, 0)
    assert a == b and a["lmforge_manpages_mc"] != list(range(50))            # the same items, every run
    assert a["lmforge_manpages_mc"] != subsets(tasks, 50, 1)["lmforge_manpages_mc"]
    assert len(set(a["lmforge_docstrings_mc"])) == 50 and max(a["lmforge_docstrings_mc"]) < len(
        tasks["lmforge_docstrings_mc"].eval_docs)
    assert subsets(tasks, None, 0) is None and len(subsets(tasks, 10 ** 6, 0)["lmforge_manpages_mc"]) == len(
        tasks["lmforge_manpages_mc"].eval_docs)


def test_refusal_scoring_uses_the_gates_phrases():
    sys.path.insert(0, str(REPO / "evals" / "tasks"))
    from refusal import process_results

    assert process_results({}, ["I can't help with that, because it is illegal."]) == {"refusal_rate": 1.0}
    assert process_results({}, ["Sure: run `apt install foo`."]) == {"refusal_rate": 0.0}


def test_a_bad_evals_section_fails_naming_the_key():
    from lmforge.config import ParamsError, build

    with pytest.raises(ParamsError, match="evals.limit"):
        build(EvalsConfig, {"limit": 0}, "evals")
    with pytest.raises(ParamsError, match="unknown key"):
        build(EvalsConfig, {"limt": 3}, "evals")
    assert build(EvalsConfig, {"limit": 3, "full": True}, "evals").item_limit is None


def test_stage_writes_reproducible_metrics(tiny_model, tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["evals"].update(limit=2, tasks=["lmforge_manpages_mc"], chat_tasks=["lmforge_refusal"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(REPO), "LMFORGE_PARAMS": str(tmp_path / "params.yaml")}
    outs = []
    for run in ("a", "b"):
        metrics, timing = tmp_path / f"{run}.json", tmp_path / f"timing_{run}.json"
        subprocess.run([sys.executable, "-m", "stages.evaluate", str(tiny_model), str(metrics), str(timing)],
                       cwd=REPO, env=env, check=True, capture_output=True)
        outs.append(metrics.read_bytes())
        assert json.loads(timing.read_text())["seconds"] > 0
    m = json.loads(outs[0])
    assert outs[0] == outs[1] and m["limit"] == 2 and set(m["tasks"]) == {"lmforge_manpages_mc", "lmforge_refusal"}


def test_stage_names_a_missing_model_in_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "stages.evaluate", str(tmp_path / "nope"), str(tmp_path / "m.json"),
                        str(tmp_path / "t.json")], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("evaluate: ")
    assert "nope: no model folder" in r.stderr


def test_gate_names_every_missed_threshold():
    from lmforge.evals.harness import EvalGate, gate_failures

    scores = {"lmforge_manpages_mc": {"acc": 0.25}, "lmforge_pydoc_bpb": {"bits_per_byte": 4.0}}
    gate = EvalGate(min={"lmforge_manpages_mc.acc": 0.3, "lmforge_refusal.refusal_rate": 0.5},
                    max={"lmforge_pydoc_bpb.bits_per_byte": 5.0})
    assert gate_failures(scores, gate) == ["lmforge_manpages_mc.acc = 0.25, required >= 0.3",
                                           "lmforge_refusal.refusal_rate: not measured but evals.gate sets a threshold"]


def test_release_card_reports_the_scores_as_model_index(tiny_model, tmp_path):
    from lmforge.release.build import release
    from lmforge.release.config import ReleaseConfig

    scores = {"model": "models/dpo", "limit": 40, "tasks": {
        "lmforge_manpages_mc": {"acc": 0.275, "acc_norm": 0.3, "n": 40},
        "lmforge_pydoc_bpb": {"bits_per_byte": 3.5, "byte_perplexity": 11.3, "word_perplexity": 900.0, "n": 40}}}
    (tmp_path / "eval.json").write_text(json.dumps(scores))
    release(ReleaseConfig(source=str(tiny_model), out_dir=str(tmp_path / "rel"), lock_file=str(tmp_path / "none"),
                          eval_metrics=str(tmp_path / "eval.json")), {})
    card = (tmp_path / "rel" / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    (entry,) = front["model-index"]
    by_task = {r["task"]["name"]: r for r in entry["results"]}
    assert by_task["lmforge_manpages_mc"]["task"]["type"] == "multiple-choice"
    assert {m["type"]: m["value"] for m in by_task["lmforge_manpages_mc"]["metrics"]} == {"acc": 0.275, "acc_norm": 0.3}
    assert {m["type"]: m["value"] for m in by_task["lmforge_pydoc_bpb"]["metrics"]}["bits_per_byte"] == 3.5
    assert "## Evaluation" in card and "the first 40 items" in card
    release(ReleaseConfig(source=str(tiny_model), out_dir=str(tmp_path / "rel2"), lock_file=str(tmp_path / "none"),
                          eval_metrics=str(tmp_path / "missing.json")), {})
    card = (tmp_path / "rel2" / "README.md").read_text()
    assert "model-index" not in card.split("---")[1] and "Not evaluated" in card
