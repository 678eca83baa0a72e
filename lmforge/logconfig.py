"""One way to log: every module writes to ``logging.getLogger(__name__)``; one function configures the root.

Why: a stage's progress lines, a gate's warning and a server's request log are all log
records, so one switch (the level) and one format govern them, and tests capture them
the same way. Library modules never ``print`` and never name their logger by hand
(``tests/core/test_logging.py`` holds them to it); only a command's own output (the
``lmforge`` subcommands, ``run_stage``'s one-line error) is printed.

Each process entry configures the root once:

- ``run_stage`` (every ``stages/*.py``): ``configure()``. Records of ``lmforge.*``,
  ``stages.*`` and ``__main__`` (the stage module itself, run with ``python -m``) at INFO
  and up go to stdout, as bare lines (a warning as ``WARNING: …``),
  so a stage's output reads as before; other libraries stay at WARNING.
- ``lmforge serve`` and ``lmforge gateway``: ``configure(level, server=True)``: every
  logger at ``--log-level``, to stderr, with time, logger name and level.

datatrove logs through loguru, to its own sink; transformers and DeepSpeed keep their own
handlers. A process that never calls ``configure`` (a library user, a test) gets Python's
defaults.
"""
from __future__ import annotations

import logging
import sys

OURS = ("lmforge", "stages", "__main__")   # whose INFO records a stage shows (a stage runs as __main__)
SERVER_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


class _Current(logging.StreamHandler):
    """A handler on whatever ``sys.stdout`` (or ``sys.stderr``) is when a record is emitted: pytest
    swaps them per test, and a handler holding one test's stream would write to a closed file."""

    def __init__(self, name: str):
        self._which = name
        super().__init__(getattr(sys, name))

    @property
    def stream(self):
        return getattr(sys, self._which)

    @stream.setter
    def stream(self, _value) -> None:
        pass


class _StageFormatter(logging.Formatter):
    """A bare line for INFO and below; ``LEVEL: message`` for a warning or worse."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"{record.levelname}: {text}" if record.levelno >= logging.WARNING else text


def configure(level: str | int = "INFO", *, server: bool = False) -> None:
    """Configure the root logger for this process; calling it again replaces the earlier set-up."""
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "_lmforge", False)]:
        root.removeHandler(h)
    level = level.upper() if isinstance(level, str) else level
    if server:
        handler: logging.Handler = _Current("stderr")
        handler.setFormatter(logging.Formatter(SERVER_FORMAT))
        root.setLevel(level)
        for name in OURS:
            logging.getLogger(name).setLevel(logging.NOTSET)
    else:
        handler = _Current("stdout")
        handler.setFormatter(_StageFormatter("%(message)s"))
        root.setLevel(logging.WARNING)
        for name in OURS:
            logging.getLogger(name).setLevel(level)
    handler._lmforge = True
    root.addHandler(handler)
