"""Fixtures for the gateway tests: a real upstream server, gateway processes, review data.

The upstream is the real local TGI-compatible server (`lmforge serve`) on a tiny
Llama model this fixture saves, started once per session. Gateways run as real
processes started through the CLI (`lmforge gateway`), so auth, logging and the
SIGKILL test exercise exactly what a user runs.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lmforge.testing.gateway import free_port, start, start_gateway, stop, wait_http


@pytest.fixture(scope="session")
def stack(tiny_model, review_data, tmp_path_factory):
    """The real `lmforge serve` on the tiny model and a gateway in front of it.

    Both start at once (the gateway fetches upstream /info lazily), which halves
    the fixed start-up cost of the suite on two cores.
    """
    port = free_port()
    logs = tmp_path_factory.mktemp("stack")
    serve = start(["-m", "lmforge.cli", "serve", "--model-id", str(tiny_model), "--port", str(port),
                   "--max-input-tokens", "192", "--max-total-tokens", "256"], logs / "serve.log")
    url = f"http://127.0.0.1:{port}"
    gw = start_gateway(url, logs / "store", review_data, logs / "gateway.log", wait=False)
    try:
        wait_http(f"{url}/health", serve)
        wait_http(f"{gw.url}/health", gw.proc)
        yield url, gw
    finally:
        stop(gw.proc)
        stop(serve)


@pytest.fixture(scope="session")
def upstream(stack) -> str:
    return stack[0]


@pytest.fixture(scope="session")
def review_data(tmp_path_factory) -> Path:
    """A data/ folder with curated and rejected parquet shards (contract columns)."""
    root = tmp_path_factory.mktemp("data")
    (root / "curated").mkdir()
    (root / "rejected").mkdir()
    pd.DataFrame({
        "id": ["c1", "c2"], "url": ["https://debian.org/a", "https://python.org/b"],
        "source": ["handbook", "pydoc"], "language": ["en", "en"],
        "text": ["Debian is a free operating system.", "Python lets you work quickly."],
        "split": ["train", "val"]}).to_parquet(root / "curated" / "part-0.parquet")
    pd.DataFrame({
        "id": ["r1", "r2", "r3"], "url": ["https://x.org/1", "https://x.org/2", "https://x.org/3"],
        "source": ["handbook"] * 3, "language": ["en", "de", "en"],
        "text": ["buy buy buy buy", "Ein kurzer Text.", "Debian is a free operating system!"],
        "split": ["train"] * 3, "reason": ["gopher_repetition", "language", "minhash_dedup"],
        "duplicate_of": [None, None, "c1"]}).to_parquet(root / "rejected" / "part-0.parquet")
    return root


@pytest.fixture(scope="session")
def gateway(stack):
    return stack[1]
