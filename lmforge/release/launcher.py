"""Start a server in a subprocess, wait until its /health answers 200, stop it cleanly.

The deploy stage, the benchmark and the tests all need "a real server on a free port,
then tear it down" — and so does the gateway (its benchmark and tests start
`lmforge gateway` the same way). `start_process` does it for any command line;
`start_server` is the `lmforge serve` case. The child's output goes to a log file
(never a pipe that could fill and block it); if the child dies or /health does not come
up in time, the error carries the log's tail.

    with start_server("models/release") as srv:
        Client(srv.url).generate("Hello")
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


class ServerProcess:
    """A running child server; a context manager that stops it on exit."""

    def __init__(self, proc: subprocess.Popen, url: str, log_path: Path):
        self.proc, self.url, self.log_path = proc, url, log_path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log(self) -> str:
        return _tail(self.log_path)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_healthy(url: str, *, timeout: float = 120.0, proc: subprocess.Popen | None = None,
                 log_path: Path | None = None, health_path: str = "/health") -> None:
    """Poll `url + health_path` until it answers 200; raise with the log tail otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before becoming healthy:\n"
                               f"{_tail(log_path) if log_path else ''}")
        try:
            with urllib.request.urlopen(url + health_path, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url}{health_path} not healthy after {timeout:.0f}s:\n{_tail(log_path) if log_path else ''}")


def start_process(argv: list[str], *, port: int, host: str = "127.0.0.1", health_path: str = "/health",
                  env: dict | None = None, timeout: float = 120.0, log_path: str | Path | None = None,
                  cwd: str | Path | None = None) -> ServerProcess:
    """Run `argv` (which must listen on `host:port`) and wait for its health route."""
    child_env = {**os.environ, **(env or {})}
    for var, value in (("OMP_NUM_THREADS", "1"), ("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"),
                       ("TOKENIZERS_PARALLELISM", "false"), ("PYTHONUNBUFFERED", "1")):
        child_env.setdefault(var, value)
    if log_path is None:
        fd, log_path = tempfile.mkstemp(prefix="lmforge-server-", suffix=".log")
        os.close(fd)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=child_env, cwd=cwd,
                                start_new_session=True)
    url = f"http://{host}:{port}"
    server = ServerProcess(proc, url, log_path)
    try:
        wait_healthy(url, timeout=timeout, proc=proc, log_path=log_path, health_path=health_path)
    except BaseException:
        server.stop()
        raise
    return server


# `start_server` runs `python -m lmforge.serve.cli serve` (the `lmforge serve` command alone):
# lmforge.codedeps follows these names, so a stage that starts the server reruns when the
# server's code changes.
SUBPROCESS_MODULES = ("lmforge.serve.cli",)


def start_server(model_id: str | Path, *, port: int | None = None, host: str = "127.0.0.1",
                 extra_args: list[str] | tuple[str, ...] = (), env: dict | None = None, timeout: float = 120.0,
                 log_path: str | Path | None = None) -> ServerProcess:
    """`lmforge serve --model-id MODEL_ID` on a free port, healthy on return."""
    port = port or free_port(host)
    argv = [sys.executable, "-m", SUBPROCESS_MODULES[0], "serve", "--model-id", str(model_id),
            "--hostname", host, "--port", str(port), *map(str, extra_args)]
    return start_process(argv, port=port, host=host, env=env, timeout=timeout, log_path=log_path)
