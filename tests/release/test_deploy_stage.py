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


def test_deploy_stage_writes_files_and_serve_metrics(tiny_model, tmp_path):
    shutil.copytree(tiny_model, tmp_path / "models" / "release")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "serve": {"max_input_tokens": 64, "max_total_tokens": 128, "max_batch_size": 4},
        "deploy": {"smoke": {"requests": 8, "max_new_tokens": 4, "concurrency": [1, 4]}}}))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "stages.deploy"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert {p.name for p in (tmp_path / "deploy").iterdir()} == {
        "tgi-run.sh", "kubernetes.yaml", "tgi.sbatch", "vllm-run.sh", "vllm-kubernetes.yaml", "vllm.sbatch",
        "prometheus.yml", "grafana-dashboard.json"}  # deploy.engine defaults to both
    m = json.loads((tmp_path / "metrics" / "serve.json").read_text())
    assert m["smoke"]["generate_tokens"] >= 1
    assert not any(k.startswith("concurrency_") for k in m)  # speed stays out of the stage's outputs
    timing = json.loads((tmp_path / "metrics" / "timing" / "serve.json").read_text())
    for c in (1, 4):
        run = timing[f"concurrency_{c}"]
        assert run["requests"] == 8 and run["concurrency"] == c and run["generated_tokens"] >= 8
        assert 0 < run["ttft_p50_s"] <= run["latency_p50_s"] <= run["latency_p95_s"]
        assert run["tokens_per_s"] > 0
