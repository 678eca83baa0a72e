"""The `lmforge` command: one entry point, one subcommand per module.

Each subcommand lives beside the code it runs and registers itself with
`add_parser(subparsers)` (setting `func`); this file lists the modules, so adding a
command is one line here. The flag types the commands share live in ``lmforge.argtypes``
below every room, so the subcommands never import this file back. Subcommand
modules keep heavy imports inside their `run` so `lmforge --help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from lmforge.argtypes import offline_defaults

SUBCOMMANDS = (
    "lmforge.serve.cli",    # lmforge serve: local TGI-compatible server
    "lmforge.gateway.cli",  # lmforge gateway: auth, request log, metrics, feedback, web page
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmforge", description="lmforge: serve and monitor lmforge models")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    offline_defaults()
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
