"""argparse types and choices that every `lmforge` subcommand shares.

Why a ground-floor module: ``lmforge/cli.py`` imports each subcommand module, so if those
imported their flag types from it the two would depend on each other. Here a bad value is a
usage error naming the flag rather than a traceback at start-up, for every command alike.
"""
from __future__ import annotations

import argparse
import os

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


def offline_defaults() -> None:
    """Every command runs offline unless the user says otherwise: no hub look-ups at start."""
    for var, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(var, value)
