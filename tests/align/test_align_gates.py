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
    ok = GateConfig(max_perplexity=metrics["perplexity"] * 1.01, max_over_refusal=1.0)
    assert record_and_gate("sft", metrics, [], ok, samples, str(tmp_path / "m"), str(tmp_path / "r")) == []
    assert "Gate: PASSED" in (tmp_path / "r" / "sft.md").read_text()
    warn = GateConfig(mode="warn", min_refusal_rate=1.0, min_win_rate=0.5)
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
