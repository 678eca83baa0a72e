"""Shared fixtures: one tiny model per session, in-process servers on free ports.

Servers run uvicorn in a thread of the test process (fast: no second torch import);
the deploy-stage and CLI tests start real subprocesses through lmforge.release.launcher.
"""
from __future__ import annotations

import os
import threading
import time

import httpx
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class ThreadServer:
    """`create_app(state)` served by uvicorn in a daemon thread."""

    def __init__(self, state):
        import uvicorn

        from lmforge.serve.app import create_app
        from lmforge.release.launcher import free_port

        self.state = state
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        cfg = uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning",
                             timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("in-process server did not become healthy")

    def metric(self, name: str) -> float:
        """Value of one sample line (`name` includes labels) from /metrics."""
        for line in httpx.get(self.url + "/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


def make_server(model_dir, **kw):
    from lmforge.serve.server import load_state

    kw.setdefault("max_input_tokens", 64)
    kw.setdefault("max_total_tokens", 128)
    kw.setdefault("max_batch_size", 4)
    kw.setdefault("batch_wait_ms", 2)
    return ThreadServer(load_state(model_dir, **kw))


@pytest.fixture(scope="session")
def server_factory():
    """`server_factory(model_dir, **load_state_kwargs)` -> a started ThreadServer."""
    return make_server


@pytest.fixture(scope="session")
def server(tiny_model):
    srv = make_server(tiny_model, max_concurrent_requests=16)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)
