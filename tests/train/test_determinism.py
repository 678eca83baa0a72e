"""Same commit, same numbers: what is bit-exact and what only agrees within a tolerance.

Measured (docs/LOG.md, "Determinism"): on one machine, pretraining is bit-exact run to
run (threads are fixed by `pretrain.threads`, deterministic algorithms are on). A
different CPU is a different story: PyTorch, oneDNN and MKL pick their kernels by the
instruction set (AVX-512, AVX2, plain), and each path rounds differently. That is
kernel numerics, not nondeterminism: forcing another path here with ATen's and
oneDNN's own switches reproduces it, every path is itself bit-exact, and the losses
agree to about 1e-6 after 8 steps (the 80-step default drifts further: 912.6 vs 926.0
validation perplexity was reported from another CPU). So the golden curve carries a
tolerance a different CPU still meets, and this file checks both halves.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lmforge.testing.pretrain import ENV, REPO, golden_run

GOLDEN = json.loads(Path(__file__).with_name("golden_tiny_loss.json").read_text())
# The portable kernel paths every x86-64 CPU has: what "another CPU" looks like here.
OTHER_CPU = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
             "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}


def test_same_machine_is_bit_exact(tmp_path):
    a, b = golden_run(tmp_path / "a"), golden_run(tmp_path / "b")
    assert a["weights_sha256"] == b["weights_sha256"]
    assert a["train_loss"] == b["train_loss"] and a["val_loss"] == b["val_loss"]


def test_other_cpu_kernels_stay_within_the_golden_tolerance(tmp_path):
    env = {**os.environ, **ENV, **OTHER_CPU, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "lmforge.testing.pretrain", "golden", str(tmp_path)],
                       env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    (line,) = [x for x in r.stdout.splitlines() if x.startswith("GOLDEN ")]
    other = json.loads(line[len("GOLDEN "):])
    assert other["train_loss"] == pytest.approx(GOLDEN["train_loss"], rel=1e-3, abs=1e-3)
    assert other["val_loss"] == pytest.approx(GOLDEN["val_loss"], rel=1e-3, abs=1e-3)
