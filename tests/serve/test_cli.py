"""`lmforge serve` is started like TGI's launcher: same flags, same environment variables."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmforge.cli import build_parser, main


def test_serve_flags_match_tgi_launcher(monkeypatch):
    monkeypatch.setenv("MAX_TOTAL_TOKENS", "512")
    monkeypatch.setenv("MODEL_ID", "some/dir")
    args = build_parser().parse_args(["serve", "--port", "9000", "--max-input-tokens", "100",
                                      "--max-concurrent-requests", "3", "--max-batch-size", "2", "--hostname", "::1"])
    assert (args.port, args.max_input_tokens, args.max_total_tokens, args.model_id) == (9000, 100, 512, "some/dir")
    assert (args.max_concurrent_requests, args.max_batch_size, args.hostname) == (3, 2, "::1")
    assert build_parser().parse_args(["gateway", "--upstream", "http://x"]).command == "gateway"


def test_serve_defaults_to_release(monkeypatch):
    monkeypatch.delenv("MODEL_ID", raising=False)
    assert build_parser().parse_args(["serve"]).model_id == "models/release"


def test_serve_refuses_bad_model_dir_and_limits(tmp_path, tiny_model, capsys):
    assert main(["serve", "--model-id", str(tmp_path / "nope")]) == 2
    assert "not a model folder" in capsys.readouterr().err
    assert main(["serve", "--model-id", str(tiny_model), "--max-total-tokens", "100000"]) == 2
    assert "exceeds the model's context" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--port", "notaport"])


def _lmforge(*args: str, env: dict | None = None):
    """Run `python -m lmforge.cli ARGS` as a user would, with this checkout on the path."""
    repo = str(Path(__file__).resolve().parents[2])
    full_env = {**os.environ, "PYTHONPATH": repo, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "lmforge.cli", *args], env=full_env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args,env,needle", [
    (["--log-level", "bogus"], None, "--log-level"),
    (["--port", "99999"], None, "--port"),
    ([], {"PORT": "abc"}, "--port"),
    (["--payload-limit", "0"], None, "--payload-limit"),
    ([], None, "cannot load"),
    (["--batch-kernels", "mkl"], None, "--batch-kernels"),
    ([], {"LMFORGE_BATCH_KERNELS": "mkl"}, "--batch-kernels"),
], ids=["log-level", "port-range", "port-env", "payload-limit", "broken-model", "kernels", "kernels-env"])
def test_serve_user_errors_exit_with_one_line_not_a_traceback(tmp_path, args, env, needle):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    r = _lmforge("serve", "--model-id", str(broken), *args, env=env)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and needle in r.stderr, r.stderr


def test_payload_limit_flag_matches_tgi(monkeypatch):
    monkeypatch.setenv("PAYLOAD_LIMIT", "4096")
    assert build_parser().parse_args(["serve"]).payload_limit == 4096
    assert build_parser().parse_args(["serve", "--payload-limit", "100"]).payload_limit == 100
