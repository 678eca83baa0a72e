"""One way to gate: measurements against thresholds, a verdict, then fail or warn.

Why: the post-training gates (``align.evaluate``), the eval gate (``evals.harness``), the
degenerate-reply gate (``replies``: release and deploy smoke) and any later gate all say
the same things the same way: a threshold set to null is off; a threshold on something
not measured fails (a gate never passes by default); each miss is one line,
``key = value, required <= threshold``; the metrics file records ``gate_passed`` and
``gate_failures``; ``mode: fail`` stops the stage with one ``StageFailure`` line (the
``run_stage`` contract) and ``mode: warn`` logs the same line as a warning and goes on.
It stands on the ground floor because every room that gates uses it.
"""
from __future__ import annotations

import logging
import operator
from typing import Iterable, Mapping

from lmforge.stage import StageFailure

log = logging.getLogger(__name__)

_OPS = {"<=": operator.le, ">=": operator.ge}


class GateError(StageFailure):
    """A model failed an evaluation gate."""


def threshold_failures(values: Mapping[str, float], bounds: Iterable[tuple[str, str, float | None]], where: str,
                       why_unmeasured: str = "", notes: Mapping[str, str] | None = None) -> list[str]:
    """Every ``(key, op, threshold)`` of ``bounds`` that ``values`` misses, one readable line each.

    ``op`` is ``<=`` or ``>=``; a threshold of None is off. ``where`` names the params key
    that sets the thresholds; ``why_unmeasured`` says why a value can be missing and
    ``notes`` adds a word on what a key counts."""
    failures = []
    for key, op, threshold in bounds:
        if threshold is None:
            continue
        value = values.get(key)
        if value is None:
            failures.append(f"{key}: not measured{why_unmeasured} but {where} sets a threshold")
        elif not _OPS[op](value, threshold):
            note = (notes or {}).get(key, "")
            failures.append(f"{key} = {value:.4g}{note}, required {op} {threshold:g}")
    return failures


def verdict(failures: list[str]) -> dict:
    """What a metrics file records of a gate."""
    return {"gate_passed": not failures, "gate_failures": failures}


def enforce(where: str, failures: list[str], mode: str, hint: str) -> None:
    """``mode: fail`` raises GateError naming every failure; ``warn`` logs them and goes on."""
    if not failures:
        return
    msg = f"{where} gate FAILED: " + "; ".join(failures) + f" ({hint})"
    if mode == "fail":
        raise GateError(msg + "; set mode: warn to continue anyway")
    log.warning("%s; continuing because mode is warn", msg)
