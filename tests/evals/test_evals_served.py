"""Served = offline: a multiple-choice task through a real `lmforge serve` (lm-eval local-completions)
picks what transformers picks on every item; a server that scores differently fails, naming the item."""
from __future__ import annotations

import copy

import pytest

from lmforge.evals.served import ServedMismatch, check_served, compare, offline_run, served_run
from lmforge.release.launcher import start_server

TASK = "lmforge_manpages_mc"
ARGS = ["--max-input-tokens", "192", "--max-total-tokens", "256", "--max-batch-size", "4"]


def _results(picks: list[list[float]], gold: list[int]) -> dict:
    samples = [{"doc_id": i, "doc": {"id": f"mc-{i:04d}", "question": f"What does `cmd{i}` do?"},
                "filtered_resps": [(x, False) for x in lls]} for i, lls in enumerate(picks)]
    acc = sum(max(range(4), key=lls.__getitem__) == g for lls, g in zip(picks, gold)) / len(picks)
    return {"results": {TASK: {"acc,none": acc}}, "n-samples": {TASK: {"effective": len(picks)}},
            "samples": {TASK: samples}}


def test_compare_passes_equal_picks_and_names_the_first_differing_item():
    lls = [[-5.0, -1.0, -3.0, -4.0], [-2.0, -6.0, -2.5, -9.0], [-1.0, -1.5, -0.5, -3.0], [-7.0, -2.0, -1.0, -8.0]]
    offline = _results(lls, [1, 0, 0, 2])
    served = copy.deepcopy(offline)
    served["samples"][TASK][0]["filtered_resps"][1] = (-1.00002, False)  # last bits differ, same pick
    metrics, numerics = compare(offline, served)
    assert metrics == {TASK: {"items": 4, "acc_offline": 0.75, "acc_served": 0.75, "same_picks": 4}}
    assert numerics[TASK]["max_abs_loglikelihood_diff"] == pytest.approx(2e-5)
    for i in (2, 3):
        served["samples"][TASK][i]["filtered_resps"][0] = (0.0, False)   # the server now prefers choice 0
    with pytest.raises(ServedMismatch, match=r"lmforge_manpages_mc item mc-0002 \(What does `cmd2` do\?\): "
                                             r"offline picks choice 2 .* the server picks 0"):
        compare(offline, served)


@pytest.fixture(scope="module")
def offline(tiny_model):
    return offline_run(str(tiny_model), [TASK], "evals/tasks", 8, 8)


def test_live_server_picks_what_transformers_picks(tiny_model, offline):
    with start_server(tiny_model, extra_args=ARGS) as srv:
        served = served_run(srv.url, str(tiny_model), [TASK], "evals/tasks", 8, 4, 192)
    metrics, numerics = compare(offline, served)
    assert metrics[TASK]["items"] == metrics[TASK]["same_picks"] == 8
    assert metrics[TASK]["acc_served"] == metrics[TASK]["acc_offline"]
    assert numerics[TASK]["max_abs_loglikelihood_diff"] < 1e-3   # the same numbers, up to batching


def test_a_server_that_scores_otherwise_fails_naming_an_item(tiny_model, tmp_path):
    """A server on other weights (as a server bug would) answers fluently, but not as the model does.
    Random tiny models mostly prefer the choice with the fewest tokens, so two of them agree on most
    items; on the first 100, these two differ on 8."""
    from lmforge.testing.tiny_model import build_tiny_model

    other = build_tiny_model(tmp_path / "other", seed=1)
    with start_server(other, extra_args=ARGS) as srv:
        with pytest.raises(ServedMismatch, match=r"lmforge_manpages_mc item manpages_mc-\d{4} \(What does `"):
            check_served(srv.url, str(tiny_model), [TASK], "evals/tasks", 100, 4, 192)
