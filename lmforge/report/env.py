"""The environment block of the report card: what machine and which stack made the numbers.

A tokens/s or an MFU means little without the CPU or GPU it ran on, the torch threads
the stages used and the versions of the libraries that did the work. The block is read
where the report stage runs (the pipeline's machine): the processor's model name from
/proc/cpuinfo (or the GPU's from torch when there is one), the core count, the thread
counts params.yaml gives the stages, and installed package versions from their
metadata. No clock and no host name, so one machine gives the same block every run.
"""
from __future__ import annotations

import os
import re
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "transformers", "deepspeed", "trl", "peft", "lm_eval", "datatrove", "dvc")
THREADS = (("pretrain", ("pretrain", "threads")), ("sft", ("sft", "train", "threads")),
           ("reward", ("reward", "train", "threads")), ("dpo", ("dpo", "train", "threads")),
           ("evals", ("evals", "threads")))


def cpu_model(cpuinfo: str | None = None) -> str:
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    m = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    return m.group(1).strip() if m else "unknown CPU"


def gpu_model() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment(params: dict) -> list[tuple[str, str]]:
    """(label, value) rows: processor, cores, the stages' torch threads, library versions."""
    rows = [("CPU", cpu_model()), ("CPU cores", str(os.cpu_count()))]
    gpu = gpu_model()
    rows.append(("GPU", gpu or "none"))
    for stage, path in THREADS:
        node = params
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            rows.append((f"torch threads: {stage}", str(node)))
    rows += [(name, version(name)) for name in PACKAGES]
    return rows
