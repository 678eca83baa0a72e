"""The `lmforge` command: one entry point, one subcommand per module.

Each subcommand lives beside the code it runs and registers itself with
`add_parser(subparsers)` (setting `func`); this file lists the modules, so adding a
command is one line here, and holds the flag types the server commands share, so a bad
value is a usage error naming the flag rather than a traceback at start-up. Subcommand
modules keep heavy imports inside their `run` so `lmforge --help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

SUBCOMMANDS = (
    "lmforge.serve.cli",    # lmforge serve: local TGI-compatible server
    "lmforge.gateway.cli",  # lmforge gateway: auth, request log, metrics, feedback, web page
    "lmforge.check",        # lmforge check: the whole params.yaml, before any compute
)
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")  # what both logging and uvicorn accept


def port_number(text: str) -> int:
    """argparse type: a TCP port."""
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmforge", description="lmforge: check params, serve and monitor lmforge models")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    for var, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(var, value)
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
