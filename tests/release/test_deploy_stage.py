"""The deploy stage end to end: files, a real `lmforge serve` subprocess, client metrics."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _run_deploy(tmp_path, tiny_model, served_eval: dict):
    shutil.copytree(tiny_model, tmp_path / "models" / "release")
    for d in ("evals/tasks", "evals/data"):   # the served = offline check's task and items
        shutil.copytree(REPO / d, tmp_path / d)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "serve": {"max_input_tokens": 160, "max_total_tokens": 192, "max_batch_size": 4},
        "deploy": {"smoke": {"requests": 8, "max_new_tokens": 4, "concurrency": [1, 4]}, "served_eval": served_eval},
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
        assert run["requests"] == 8 and run["concurrency"] == c and run["generated_tokens"] >= 8
        assert 0 < run["ttft_p50_s"] <= run["latency_p50_s"] <= run["latency_p95_s"]
        assert run["tokens_per_s"] > 0
