"""The one gate helper (``lmforge.gates``) every gate uses: its lines, its verdict, fail and warn."""
from __future__ import annotations

import pytest

from lmforge.gates import GateError, enforce, threshold_failures, verdict
from lmforge.stage import StageFailure


def test_a_threshold_is_off_when_null_and_a_missing_value_fails():
    values = {"ppl": 12.34567, "acc": 0.25}
    bounds = [("ppl", "<=", 10.0), ("acc", ">=", 0.2), ("win", ">=", 0.5), ("loss", "<=", None)]
    assert threshold_failures(values, bounds, "sft.eval.gate", notes={"ppl": " (held out)"}) == [
        "ppl = 12.35 (held out), required <= 10", "win: not measured but sft.eval.gate sets a threshold"]
    assert threshold_failures(values, [("acc", ">=", 0.25), ("ppl", "<=", 12.34567)], "g") == []   # bounds hold


def test_fail_stops_the_stage_with_one_line_and_warn_logs_it(caplog):
    with pytest.raises(GateError, match=r"^x gate FAILED: a = 2, required <= 1 \(see p\); set mode: warn") as e:
        enforce("x", ["a = 2, required <= 1"], "fail", "see p")
    assert isinstance(e.value, StageFailure)
    enforce("x", ["a = 2, required <= 1"], "warn", "see p")
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "x gate FAILED: a = 2, required <= 1 (see p); continuing because mode is warn"]
    enforce("x", [], "fail", "see p")   # nothing missed: nothing happens
    assert verdict([]) == {"gate_passed": True, "gate_failures": []}
