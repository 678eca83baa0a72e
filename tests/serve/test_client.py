"""Conformance: the official `text-generation` client (0.7.0) against lmforge serve.

The client pins huggingface-hub<1.0, which would hold the whole stack back, so it
lives in its own venv under ~/.cache/lmforge (made once, reused) and runs the checks
of tg_conformance.py there as a subprocess; the project's env never sees it. Without
the package (no registry reachable and no cached venv) the tests skip, saying so.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "support" / "tg_conformance.py"
VENV = Path(os.environ.get("LMFORGE_TG_VENV", Path.home() / ".cache" / "lmforge" / "text-generation-0.7.0"))


@pytest.fixture(scope="session")
def tg_python() -> Path:
    python = VENV / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import text_generation"]).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", VENV], check=True)
    r = subprocess.run([python, "-m", "pip", "install", "-q", "text-generation==0.7.0"],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.skip(f"cannot install text-generation==0.7.0 into {VENV} (offline?): {r.stderr[-500:]}")
    return python


def run_check(python: Path, check: str, url: str) -> None:
    r = subprocess.run([python, SCRIPT, check, url], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": ""})
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout[-2000:] + r.stderr[-3000:]


@pytest.mark.parametrize("check", ["generate_stream_chat", "sampling_and_errors", "async_client"])
def test_official_client(tg_python, server, check):
    run_check(tg_python, check, server.url)


def test_official_client_sees_overload(tg_python, tiny_model, server_factory):
    srv = server_factory(tiny_model, max_concurrent_requests=1, max_total_tokens=256, max_input_tokens=32)
    engine = srv.state.engine   # every pass slowed: the model's forward and the lean step (fast_decode)
    forward, lean = engine.model.forward, engine._lean
    engine.model.forward = lambda *a, **kw: (time.sleep(0.02), forward(*a, **kw))[1]
    if lean is not None:
        engine._lean = lambda *a, **kw: (time.sleep(0.02), lean(*a, **kw))[1]
    try:
        run_check(tg_python, "overload", srv.url)
    finally:
        srv.stop()


def test_project_env_has_no_text_generation_client():
    """Its huggingface-hub<1.0 pin would hold the stack back: it stays in the test venv only."""
    import huggingface_hub

    assert int(huggingface_hub.__version__.split(".")[0]) >= 1
    with pytest.raises(ImportError):
        __import__("text_generation")
