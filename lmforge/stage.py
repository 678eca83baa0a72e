"""How every pipeline stage ends: with its result, or with one line a person can act on.

Why: ``dvc repro`` and Snakemake show a failed stage's stderr, and a Python traceback for a
typo in params.yaml or a corrupt input file buries the one line that matters (the key or
the file). Library code raises ``InputError`` (bad parameters or bad input: exit code 2) or
``StageFailure`` (the stage ran and a data check or a quality gate said no: exit code 1);
``run_stage`` turns those, and a missing input file, into a message on stderr that starts
with the stage's name: one line for bad input; a failed data check adds one line per failed
expectation. Any other exception is a bug and keeps its traceback.
``LMFORGE_TRACEBACK=1`` shows the traceback of the expected errors too.

A stage that succeeds under DVC (which names it in ``$DVC_STAGE``) also leaves its wall
time in ``metrics/timing/stages/<stage>.json``: DVC itself records no durations, and the
report card lists them. Like all of ``metrics/timing/``, it is no stage's output and is
never hashed, so it does not change dvc.lock.

Every ``stages/*.py`` ends with ``if __name__ == "__main__": run_stage(main)``, which also
configures logging for the stage (``lmforge.logconfig``: its progress lines on stdout).
"""
from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path
from typing import Callable, NoReturn

BAD_INPUT, FAILED = 2, 1
STAGE_TIMING_DIR = "metrics/timing/stages"   # <stage>.json: {"seconds": wall time of its last run}


class InputError(ValueError):
    """Bad parameters or bad input data that the user must fix (exit code 2)."""


class StageFailure(RuntimeError):
    """The stage ran and a data check or a quality gate failed (exit code 1)."""


def exit_code(err: BaseException) -> int | None:
    """The exit code for an expected error, None for a bug."""
    if isinstance(err, (InputError, FileNotFoundError)):
        return BAD_INPUT
    if isinstance(err, StageFailure):
        return FAILED
    return None


def message(err: BaseException) -> str:
    """Bad input in one line; a failed check keeps its list of failures, one per line."""
    text = str(err).strip() or type(err).__name__
    if isinstance(err, StageFailure):
        return text
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def stage_name(main: Callable) -> str:
    """``tokenize`` for ``stages.tokenize.main``, also when run as ``python -m stages.tokenize``."""
    spec = getattr(sys.modules.get(main.__module__), "__spec__", None)
    return (spec.name if spec else main.__module__).rpartition(".")[2]


def _process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``), so imports count too; else None."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rpartition(")")[2].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def record_wall_time(seconds: float) -> Path | None:
    """Write ``{"seconds": ...}`` for the DVC stage running this process (rank 0 only)."""
    name = os.environ.get("DVC_STAGE", "").rpartition(":")[2]   # "dir/dvc.yaml:name" outside the root
    if not name or os.environ.get("RANK", "0") != "0":
        return None
    from lmforge.io import write_json

    path = Path(STAGE_TIMING_DIR) / f"{name}.json"
    write_json(path, {"seconds": round(seconds, 1)})
    return path


def close_process_group() -> None:
    """End this rank's torch.distributed process group, if the stage opened one (DeepSpeed,
    accelerate under torchrun). Left to the interpreter's exit, gloo's worker threads can be
    destroyed while joinable ("terminate called without an active exception"): the rank dies
    of SIGABRT after its work is done, and torchrun reports the whole stage failed.
    `destroy_process_group` only drops torch's own references: a trainer's DDP wrapper left in a
    reference cycle still holds the group, so the cycles are collected first, while the
    interpreter is whole (one such abort in six two-rank runs of tests/support/align_dist.py)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()
        gc.collect()


def run_stage(main: Callable[[], int | None]) -> NoReturn:
    """Run a stage's ``main`` and exit: its return code, or an expected error as one line."""
    from lmforge.logconfig import configure   # here: the Snakefile loads config.py, and so this module, alone

    configure()
    start = time.monotonic()
    try:
        code = main()
        if not code:
            age = _process_age()
            record_wall_time(age if age is not None else time.monotonic() - start)
            close_process_group()
    except Exception as e:  # noqa: BLE001 - re-raised unless it is an expected error
        code = exit_code(e)
        if code is None or os.environ.get("LMFORGE_TRACEBACK"):
            raise
        print(f"{stage_name(main)}: {message(e)}", file=sys.stderr)
    raise SystemExit(code or 0)
