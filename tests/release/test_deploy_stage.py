"""The deploy stage end to end: files, a real `lmforge serve` subprocess, client metrics."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _run_deploy(tmp_path, tiny_model, served_eval: dict, gate_mode: str = "warn"):
    import pandas as pd

    shutil.copytree(tiny_model, tmp_path / "models" / "release")
    for d in ("evals/tasks", "evals/data"):   # the served = offline check's task and items
        shutil.copytree(REPO / d, tmp_path / d)
    (tmp_path / "instr").mkdir()   # the smoke gate's held-out prompts
    pd.DataFrame({"prompt": ["What is Debian?", "Name a text editor.", "What does ls do?"]}).to_parquet(
        tmp_path / "instr" / "val.parquet")
    check = {"data_dir": "instr", "prompts": 3, "max_new_tokens": 24, "gate": {"mode": gate_mode}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "serve": {"max_input_tokens": 160, "max_total_tokens": 192, "max_batch_size": 4},
        "deploy": {"smoke": {"requests": 8, "max_new_tokens": 4, "concurrency": [1, 4], "check": check},
                   "served_eval": served_eval},
        "evals": {}}))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "stages.deploy"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)


def test_deploy_stage_refuses_a_served_eval_batch_above_the_server_limit(tiny_model, tmp_path):
    r = _run_deploy(tmp_path, tiny_model, {"batch_size": 8})
    assert r.returncode == 2 and "deploy.served_eval.batch_size (8) must be <= serve.max_batch_size (4)" in r.stderr
    assert "Traceback" not in r.stderr


def test_deploy_stage_writes_files_and_serve_metrics(tiny_model, tmp_path):
    r = _run_deploy(tmp_path, tiny_model, {"limit": 6, "batch_size": 4})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert {p.name for p in (tmp_path / "deploy").iterdir()} == {
        "tgi-run.sh", "kubernetes.yaml", "tgi.sbatch", "vllm-run.sh", "vllm-kubernetes.yaml", "vllm.sbatch",
        "prometheus.yml", "grafana-dashboard.json"}  # deploy.engine defaults to both
    m = json.loads((tmp_path / "metrics" / "serve.json").read_text())
    assert m["smoke"]["generate_tokens"] >= 1
    served = m["served_eval"]["lmforge_manpages_mc"]   # the live server picked what transformers picks
    assert served["items"] == served["same_picks"] == 6 and served["acc_served"] == served["acc_offline"]
    numerics = json.loads((tmp_path / "metrics" / "timing" / "served_eval.json").read_text())
    assert numerics["lmforge_manpages_mc"]["max_abs_loglikelihood_diff"] < 1e-3
    assert not any(k.startswith("concurrency_") for k in m)  # speed stays out of the stage's outputs
    timing = json.loads((tmp_path / "metrics" / "timing" / "serve.json").read_text())
    for c in (1, 4):
        run = timing[f"concurrency_{c}"]
        # a fixed output length: every request gives its 4 tokens, whatever the model says (ignore_eos)
        assert run["requests"] == 8 and run["concurrency"] == c and run["generated_tokens"] == 8 * 4
        assert 0 < run["ttft_p50_s"] <= run["latency_p50_s"] <= run["latency_p95_s"]
        # events that arrive in one network read are 0 s apart, so ITL p50 may be 0 on a fast model
        assert 0 <= run["itl_p50_s"] <= run["itl_p95_s"] < run["latency_p95_s"]
        assert run["tokens_per_s"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mute", "looping"])
def test_deploy_smoke_gate_fails_a_mute_or_looping_model_and_warn_mode_flags_it(tiny_model, tmp_path, kind):
    from support.degenerate import mute_and_looping

    model = mute_and_looping(tiny_model, tmp_path / "broken")[kind]
    sign = {"mute": "generate: a single-token reply", "looping": " = "}[kind]
    r = _run_deploy(tmp_path / "fail", model, {"enabled": False, "batch_size": 4}, gate_mode="fail")
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    assert "deploy smoke gate FAILED: " in r.stderr and sign in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "fail" / "metrics" / "timing" / "serve.json").exists()   # no load test of a broken model
    r = _run_deploy(tmp_path / "warn", model, {"enabled": False, "batch_size": 4}, gate_mode="warn")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "WARNING: deploy smoke gate FAILED" in r.stdout and sign in r.stdout
    replies = json.loads((tmp_path / "warn" / "metrics" / "serve.json").read_text())["replies"]
    assert replies["gate_passed"] is False and replies["replies"] == 3
    timing = json.loads((tmp_path / "warn" / "metrics" / "timing" / "serve.json").read_text())
    for c in (1, 4):   # ignore_eos: even the mute model gives every request its 4 output tokens
        assert timing[f"concurrency_{c}"]["generated_tokens"] == 8 * 4
