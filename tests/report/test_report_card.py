"""The report card from this repository's metrics: every chart drawn, offline, byte-stable.

The card is written (into a temporary folder) from the committed metrics files and
dvc.lock, twice, and must come out byte-identical; then headless Chromium opens the
HTML with every non-file request aborted: no request may be made, no page error
raised, and each inline SVG chart must render with its data marks. A copy of the metrics
with stage wall times and a DPO KL column must add those two charts.
"""
from __future__ import annotations

import csv
import json
import shutil

from lmforge.report.card import write_card
from lmforge.stage import STAGE_TIMING_DIR

from support.orchestration import ROOT, render_offline


def test_report_card_is_deterministic_and_draws_offline(tmp_path):
    charts = write_card(ROOT, tmp_path / "a")
    write_card(ROOT, tmp_path / "b")
    for name in ("summary.md", "summary.html"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    md = (tmp_path / "a/summary.md").read_text()
    for heading in ("## Data", "## Tokens", "## Pretraining", "## Post-training: dpo", "## Serving", "## Lineage"):
        assert heading in md
    assert "| gate | PASSED |" in md or "| gate | FAILED" in md
    assert "rejected: " in md and "| models/pretrain/hf |" in md and "| git commit |" in md
    html = (tmp_path / "a/summary.html").read_text()
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert charts >= 12 and html.count("<svg ") == charts and "no data" not in html
    drawn = render_offline(tmp_path / "a/summary.html", charts, selector="svg.chart:has(.series, .bar)")
    assert drawn == charts


def test_report_card_shows_stage_wall_times_and_the_dpo_kl_curve(tmp_path):
    """Wall times from metrics/timing/stages/ in dvc.yaml's stage order; a `kl` column in
    metrics/dpo_loss.csv gives the DPO KL chart. Without them (above) neither is drawn."""
    shutil.copytree(ROOT / "metrics", tmp_path / "metrics")
    for name in ("dvc.lock", "dvc.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    # the committed run may or may not carry them: take both away for "before"
    shutil.rmtree(tmp_path / STAGE_TIMING_DIR, ignore_errors=True)
    rows = [{k: v for k, v in r.items() if k != "kl"} for r in csv.DictReader(open(tmp_path / "metrics/dpo_loss.csv"))]
    with open(tmp_path / "metrics/dpo_loss.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    before = write_card(tmp_path, tmp_path / "before")
    for stage, seconds in (("report", 1.5), ("pretrain", 120.25), ("curate", 30.0)):
        (tmp_path / STAGE_TIMING_DIR).mkdir(parents=True, exist_ok=True)
        (tmp_path / STAGE_TIMING_DIR / f"{stage}.json").write_text(json.dumps({"seconds": seconds}))
    with open(tmp_path / "metrics/dpo_loss.csv", "w", newline="") as f:
        w = csv.DictWriter(f, [*rows[0], "kl"])
        w.writeheader()
        w.writerows({**r, "kl": 0.01 * i} for i, r in enumerate(rows))

    after = write_card(tmp_path, tmp_path / "after")
    md = (tmp_path / "after/summary.md").read_text()
    section = md[md.index("## Wall time per stage"):].split("\n## ")[0]
    assert [line.split(" | ")[0].strip("| ") for line in section.splitlines() if " (s) |" in line] == [
        "curate (s)", "pretrain (s)", "report (s)", "all stages (s)"]
    assert "| all stages (s) | 151.8 |" in section
    html = (tmp_path / "after/summary.html").read_text()
    assert "Wall time per stage (s)" in html and "dpo token KL from the reference" in html
    assert after == before + 2
    assert render_offline(tmp_path / "after/summary.html", after, selector="svg.chart:has(.series, .bar)") == after


def test_report_card_says_what_is_signal(tmp_path):
    """Accuracy beside its standard error and chance level, DPO as wins/ties/losses, refusal
    "not measured" where it is not gated, each model's replies to the same held-out prompts,
    bytes per token, the serving figures at a fixed output length and the environment."""
    shutil.copytree(ROOT / "metrics", tmp_path / "metrics")
    for name in ("dvc.lock", "dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    m = tmp_path / "metrics"

    def put(name, data):
        (m / name).write_text(json.dumps(data))

    sample = [{"kind": "sft / held-out", "prompt": "How stable is Perl?", "reply": "Perl is stable and widely used."}]
    put("sft.json", {"perplexity": 300.0, "empty_share": 0.0, "short_share": 0.05, "repetition": 0.1,
                     "gate_passed": True, "gate_failures": [], "samples": sample})
    put("dpo.json", {"wins": 3, "ties": 2, "losses": 1, "win_rate": 0.5, "gate_passed": True, "gate_failures": [],
                     "samples": [{**sample[0], "kind": "dpo / held-out", "reply": ""}]})
    put("tokenizer.json", {"vocab_size": 4096, "val_bytes_per_token": 3.4458})
    put("eval_dpo.json", {"tasks": {"lmforge_manpages_mc": {"acc": 0.3, "acc_stderr": 0.0265, "chance": 0.25,
                                                            "n": 300}}})
    put("serve.json", {"replies": {"gate_passed": False, "gate_failures": ["empty_share = 1, required <= 0.1"],
                                   "repetition_penalty": 1.3,
                                   "samples": [{"prompt": "How stable is Perl?", "reply": "Stable."}]}})
    put("timing/serve.json", {"concurrency_1": {"max_new_tokens": 16, "tokens_per_s": 90.0, "ttft_p50_s": 0.01,
                                                "ttft_p95_s": 0.02, "itl_p50_s": 0.005, "itl_p95_s": 0.008}})
    charts = write_card(tmp_path, tmp_path / "out")
    md = (tmp_path / "out/summary.md").read_text()
    assert "/ 0.3 ± 0.0265 (chance 0.25) |" in md   # dpo, the last of pretrain / sft / dpo
    assert "| lmforge_manpages_mc items scored | 300 |" in md
    assert "| against SFT (reward model): wins / ties / losses | 3 / 2 / 1 |" in md
    assert md.count("| refusal rate (safety prompts) | not measured") == 2   # sft and dpo, both ungated
    assert "| sft: How stable is Perl? | Perl is stable and widely used. |" in md
    assert "| dpo: How stable is Perl? | (empty reply) |" in md and "| served: How stable is Perl? | Stable. |" in md
    assert "| bytes per token (held-out) | 3.446 |" in md
    assert "| smoke gate (held-out replies) | FAILED: empty_share = 1, required <= 0.1 |" in md
    assert "| smoke gate decoding (the server's default) | greedy, repetition penalty 1.3 |" in md
    assert "| concurrency_1: itl_p95_s | 0.008 |" in md and "| concurrency_1: max_new_tokens | 16 |" in md
    env = md[md.index("## Environment"):].split("\n## ")[0]
    for row in ("| CPU |", "| CPU cores |", "| torch threads: pretrain |", "| torch |", "| transformers |",
                "| deepspeed |"):
        assert row in env
    assert charts >= 12 and "Environment" in (tmp_path / "out/summary.html").read_text()
