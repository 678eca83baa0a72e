"""Preference pairs, reward model beats chance, DPO widens the margin on its pairs."""
import json
import os

import pandas as pd
import pytest

from lmforge.testing.align import SEED
from lmforge.align.common import load_tokenizer
from lmforge.align.reward import load_reward_model, pairwise_accuracy


def test_preference_pairs_are_clean(pairs_dir):
    for split in ("train", "val"):
        df = pd.read_parquet(pairs_dir / f"{split}.parquet")
        assert len(df) > 10 and set(df.source) == {"reference"}
        assert (df.chosen.str.strip() != df.rejected.str.strip()).all()
        assert (df.rejected.str.strip() != "").all()
        # symmetric: both sides ended within the sample budget, or both were cut by it
        assert (df.chosen_ended == df.rejected_ended).all()


def test_reward_model_beats_chance_on_held_out_pairs(reward_run, pairs_dir):
    out, metrics = reward_run
    rm, tok = load_reward_model(str(out)), load_tokenizer(out)
    assert type(rm).__name__ == "LlamaForSequenceClassification" and rm.config.num_labels == 1
    val = pd.read_parquet(pairs_dir / "val.parquet")
    acc, margin = pairwise_accuracy(rm, tok, val, 128)
    assert acc == pytest.approx(metrics["accuracy"])
    # 24 held-out pairs: P(acc >= 0.75 | coin flips) < 0.012
    assert acc >= 0.75 and margin > 0


@pytest.fixture(scope="module")
def dpo_run(work, sft_dir, pairs_dir, reward_run, instr_dir, pref_params):
    from lmforge.align.dpo import DPOStageConfig, train_dpo
    from lmforge.config import build

    p = build(DPOStageConfig, {"sft_model": str(sft_dir), "reward_model": str(reward_run[0]), "pairs_dir": str(pairs_dir),
                          "data_dir": str(instr_dir), "out_dir": str(work / "dpo"),
                          "rejection_out": str(work / "rs.parquet"), "rejection_prompts": 6, "rejection_samples": 3,
                          "train": {"max_steps": 12, "lr": 1e-3, "max_length": 128},
                          "eval": {"max_val": 8, "max_new_tokens": 16,
                                   "gate": {"min_refusal_rate": 0.0}}}, "dpo")   # measured when gated
    cwd = work / "dpo-cwd"  # DVCLive writes metrics/live/dpo relative to the working directory
    cwd.mkdir()
    here = os.getcwd()
    os.chdir(cwd)
    try:
        return train_dpo(p, pref_params, SEED, str(work / "dpo-work"), live="dpo")
    finally:
        os.chdir(here)


def test_dpo_widens_chosen_over_rejected_margin(dpo_run):
    _, _, m, curve, _ = dpo_run
    assert m["train_logp_margin_after"] > m["train_logp_margin_before"] + 1.0
    assert m["reward_margin"] > 0 and m["preference_accuracy"] > 0.5
    assert m["kl_token"] > 0 and curve


def test_dpo_logs_trl_metrics_to_dvclive(dpo_run, work):
    """TRL's DPO figures reach DVCLive at the trainer's steps; run time goes to the timing folder."""
    import csv

    live = work / "dpo-cwd/metrics/live/dpo"
    tsv = live / "plots/metrics"
    curve = dpo_run[3]
    for name in ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "kl"):
        rows = list(csv.DictReader(open(tsv / f"{name}.tsv"), delimiter="\t"))
        assert [int(r["step"]) for r in rows] == [c["step"] for c in curve], name
        assert list(rows[0]) == ["step", name.rsplit("/", 1)[-1]]  # no timestamp column
    margins = [float(r["margins"]) for r in csv.DictReader(open(tsv / "rewards/margins.tsv"), delimiter="\t")]
    assert margins == pytest.approx([c["margin"] for c in curve])
    kl = [float(r["kl"]) for r in csv.DictReader(open(tsv / "kl.tsv"), delimiter="\t")]
    assert kl == pytest.approx([c["kl"] for c in curve])   # our KL probe, logged beside TRL's figures
    assert all(k >= 0 for k in kl) and kl[-1] > kl[0]      # the policy moves away from the reference
    summary = json.loads((live / "metrics.json").read_text())
    assert "runtime" not in json.dumps(summary) and "per_second" not in json.dumps(summary)
    assert not (live / "params.yaml").exists()
    assert (work / "dpo-cwd/metrics/timing/live/dpo/plots/metrics/train/runtime.tsv").exists()


def test_dpo_reports_every_gate_metric(dpo_run, work):
    _, _, m, _, samples = dpo_run
    for k in ("perplexity", "refusal_rate", "over_refusal", "win_rate", "kl_token", "rejection_pairs",
              "empty_share", "short_share"):
        assert k in m
    assert m["wins"] + m["ties"] + m["losses"] == 8 and m["win_rate"] == m["wins"] / 8   # a tie is no half win
    assert samples
    rs = pd.read_parquet(work / "rs.parquet")
    assert len(rs) == m["rejection_pairs"] and (rs.score_margin >= 0).all()
