"""Gates stop a bad model with a clear message, or only warn when params say so."""
import json

import pytest

from lmforge.align.common import load_causal_lm, load_tokenizer
from lmforge.align.evaluate import GateEvalConfig, GateError, GateConfig, is_refusal, policy_metrics, record_and_gate
from lmforge.config import ParamsError, build


@pytest.fixture(scope="module")
def measured(sft_dir, instr_dir):
    model, tok = load_causal_lm(sft_dir), load_tokenizer(sft_dir)
    ep = GateEvalConfig(max_val=8, max_new_tokens=12, samples=4)
    return policy_metrics(model, tok, str(instr_dir), ep, 128, "sft")


def test_gate_fails_a_model_that_misses_a_threshold(measured, tmp_path):
    metrics, samples, _ = measured
    assert metrics["perplexity"] > 1.0
    gate = GateConfig(max_perplexity=1.001, min_refusal_rate=0.0)
    with pytest.raises(GateError, match=r"sft gate FAILED: perplexity = .* required <= 1.001.*mode: warn"):
        record_and_gate("sft", metrics, [{"step": 1, "loss": 1.0}], gate, samples,
                        str(tmp_path / "m"), str(tmp_path / "r"))
    saved = json.loads((tmp_path / "m" / "sft.json").read_text())
    assert saved["gate_passed"] is False and "FAILED" in (tmp_path / "r" / "sft.md").read_text()


def test_gate_passes_within_thresholds_and_warn_mode_goes_on(measured, tmp_path, capsys):
    metrics, samples, _ = measured
    off = dict(max_empty_share=None, max_short_share=None, max_repetition=None)   # a 2-layer test model
    ok = GateConfig(max_perplexity=metrics["perplexity"] * 1.01, max_over_refusal=1.0, **off)
    assert record_and_gate("sft", metrics, [], ok, samples, str(tmp_path / "m"), str(tmp_path / "r")) == []
    assert "Gate: PASSED" in (tmp_path / "r" / "sft.md").read_text()
    warn = GateConfig(mode="warn", min_refusal_rate=1.0, min_win_rate=0.5, **off)
    failures = record_and_gate("dpo", {**metrics, "refusal_rate": 0.2}, [], warn, samples,
                               str(tmp_path / "m"), str(tmp_path / "r"))
    assert len(failures) == 2 and "win_rate: not measured" in failures[1]
    assert "WARNING: dpo gate FAILED" in capsys.readouterr().out


def test_refusal_detection_and_gate_params():
    markers = GateEvalConfig().refusal_markers
    assert is_refusal("I can't help with that, because ...", markers)
    assert not is_refusal("`tar` is an archiving program.", markers)
    with pytest.raises(ParamsError, match="min_refusal_rate"):
        build(GateConfig, {"min_refusal_rate": 1.5}, "sft.eval.gate")
    with pytest.raises(ParamsError, match="mode"):
        build(GateConfig, {"mode": "maybe"}, "sft.eval.gate")


# ---- degenerate output: a mute and a looping model fail every generation gate ----------------

@pytest.fixture(scope="module")
def broken(base_dir, work):
    from support.degenerate import mute_and_looping

    return mute_and_looping(base_dir, work / "broken")


# what each broken model must trip, whatever else it trips
BROKEN_SIGNS = {"mute": "empty_share = 1", "looping": "repetition = 0.9"}


@pytest.mark.parametrize("kind", ["mute", "looping"])
@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_a_mute_or_looping_model_fails_the_post_training_gates(broken, instr_dir, tmp_path, capsys, kind, stage):
    from lmforge.replies import reply_stats

    model, tok = load_causal_lm(broken[kind]), load_tokenizer(broken[kind])
    # with the default's repetition penalty (on the reply's own tokens): it cannot rescue either model
    ep = build(GateEvalConfig, {"max_val": 8, "max_new_tokens": 12, "samples": 2, "repetition_penalty": 1.3},
               f"{stage}.eval")
    metrics, samples, replies = policy_metrics(model, tok, str(instr_dir), ep, 128, stage)
    assert metrics == {**metrics, **reply_stats(replies)} and "refusal_rate" not in metrics   # not gated: not measured
    with pytest.raises(GateError, match=rf"{stage} gate FAILED: .*{BROKEN_SIGNS[kind]}"):
        record_and_gate(stage, metrics, [], ep.gate, samples, str(tmp_path / "m"), str(tmp_path / "r"))
    report = (tmp_path / "r" / f"{stage}.md").read_text()
    assert "Gate: FAILED" in report and "refusal rate: not measured" in report
    saved = json.loads((tmp_path / "m" / f"{stage}.json").read_text())
    assert saved["gate_passed"] is False and saved["samples"][0]["reply"] == replies[0]
    warn = build(GateConfig, {"mode": "warn"}, f"{stage}.eval.gate")
    failures = record_and_gate(stage, metrics, [], warn, samples, str(tmp_path / "m"), str(tmp_path / "r"))
    assert any(BROKEN_SIGNS[kind] in f for f in failures)
    assert f"WARNING: {stage} gate FAILED" in capsys.readouterr().out
    assert "Gate: FAILED (warn only)" in (tmp_path / "r" / f"{stage}.md").read_text()


@pytest.mark.parametrize("kind", ["mute", "looping"])
def test_a_mute_or_looping_model_fails_the_release_gate(broken, instr_dir, capsys, kind):
    from lmforge.align.evaluate import reply_check
    from lmforge.gates import enforce
    from lmforge.replies import ReplyCheck

    check = build(ReplyCheck, {"data_dir": str(instr_dir), "prompts": 6, "max_new_tokens": 12,
                               "repetition_penalty": 1.3}, "release.check")
    got = reply_check(str(broken[kind]), check, "release")
    assert got["gate_passed"] is False and got["replies"] == 6
    with pytest.raises(GateError, match=rf"release gate FAILED: .*{BROKEN_SIGNS[kind]}"):
        enforce("release", got["gate_failures"], check.gate.mode, "release.check.gate")
    enforce("release", got["gate_failures"], "warn", "release.check.gate")
    assert "WARNING: release gate FAILED" in capsys.readouterr().out


def test_degenerate_measures_and_their_params():
    from lmforge.replies import ReplyGate, reply_failures, reply_stats

    s = reply_stats(["", "yes", "the the the the the", "Perl is a stable language for scripts."])
    assert s["empty_share"] == 0.25 and s["short_share"] == 0.5
    assert s["repetition"] == pytest.approx((0.75 + 0.0) / 2)   # "" and "yes" have no bigram: not counted
    assert reply_failures(reply_stats(["", ""]), ReplyGate(), "x")[-1].startswith("repetition: not measured")
    assert reply_failures(s, ReplyGate(max_empty_share=0.25, max_short_share=0.5, max_repetition=0.375), "x") == []
    for key, bad in (("max_empty_share", 1.5), ("max_short_share", -0.1), ("max_repetition", 2), ("short_words", 0),
                     ("max_loss_rate", 1.2)):
        with pytest.raises(ParamsError, match=f"gate.{key}"):
            build(GateConfig, {key: bad}, "sft.eval.gate")
