"""`lmforge serve` is started like TGI's launcher: same flags, same environment variables."""
from __future__ import annotations

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
