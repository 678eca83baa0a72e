"""Process helpers for the gateway tests: start, wait for and stop real server processes."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
KEY = "test-key-0123456789"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}:\n{_output(proc)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise TimeoutError(f"{url} not up after {timeout}s:\n{_output(proc)}")


def _output(proc: subprocess.Popen) -> str:
    log = getattr(proc, "log_path", None)
    return Path(log).read_text()[-4000:] if log and Path(log).exists() else ""


def start(args: list[str], log_path: Path, env: dict | None = None) -> subprocess.Popen:
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env or ENV, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    proc.log_path = str(log_path)
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Gateway:
    def __init__(self, url: str, store: Path, proc: subprocess.Popen):
        self.url, self.store, self.proc = url, store, proc
        self.auth = {"Authorization": f"Bearer {KEY}"}


def start_gateway(upstream: str, store: Path, data_dir: Path, log_path: Path,
                  extra_env: dict | None = None, wait: bool = True) -> Gateway:
    port = free_port()
    env = {**ENV, "LMFORGE_API_KEY": KEY, **(extra_env or {})}
    proc = start(["-m", "lmforge.cli", "gateway", "--upstream", upstream, "--port", str(port),
                  "--store", str(store), "--data-dir", str(data_dir)], log_path, env)
    url = f"http://127.0.0.1:{port}"
    if wait:
        wait_http(f"{url}/health", proc)
    return Gateway(url, store, proc)


@contextmanager
def gateway_before(standin: Path, logs: Path, data_dir: Path, extra_env: dict | None = None):
    """A stand-in upstream script (``standin PORT``) and a gateway in front of it, both stopped
    on exit; the gateway's ``upstream`` is the stand-in's URL."""
    port = free_port()
    upstream = start([str(standin), str(port)], logs / "upstream.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/health", upstream)
        gw = start_gateway(f"http://127.0.0.1:{port}", logs / "store", data_dir, logs / "gateway.log",
                           extra_env=extra_env)
        gw.upstream = f"http://127.0.0.1:{port}"
        try:
            yield gw
        finally:
            stop(gw.proc)
    finally:
        stop(upstream)


def logged(gw: Gateway, rid: str) -> dict:
    """The gateway's request-log line for request ``rid``."""
    from lmforge.feedback.store import REQUESTS, read_jsonl

    (rec,) = [r for r in read_jsonl(gw.store / REQUESTS) if r["id"] == rid]
    return rec


def error_of(path: str, r: httpx.Response) -> tuple[str, str]:
    """(message, kind) of an error reply, checking the route's dialect: OpenAI's
    {"error": {"message", "type", "param", "code"}} on /v1/*, TGI's {"error", "error_type"} elsewhere.
    The kind is TGI's error type either way (OpenAI's ``code``)."""
    body = r.json()
    if path.startswith("/v1/"):
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
        return body["error"]["message"], body["error"]["code"]
    assert set(body) == {"error", "error_type"}, body
    return body["error"], body["error_type"]
