"""Same commit, same hashes: `dvc repro -f` in two fresh copies of this repository.

Each copy is what `git clone` gives (the tracked files and nothing generated), with
a shortened params.yaml: two sources of the sample crawl and a few pretraining steps.
Both run the real data stages and pretraining under `dvc repro -f`, and every
output hash in their dvc.lock must agree: curated and rejected data, tokenizer,
token shards, GX results and Data Docs, checkpoints and the exported model. Timing
(tokens/s, MFU) goes to metrics/timing/, outside the hashed outputs.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support.orchestration import clone_project


STAGES = ("curate", "validate_curated", "tokenizer", "tokenize", "validate_tokens", "pretrain")


def _shorten(params: dict) -> None:
    params["data"]["sources"] = [s for s in params["data"]["sources"] if s["name"] in ("pydoc", "fortunes")]
    params["tokenizer"]["vocab_size"] = 1024
    params["model"] = {**params["model"], "depth": 1}
    params["pretrain"].update(max_steps=4, eval_every=2, checkpoint_every=2, eval_rows=8)


def _out_hashes(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {f"{s}:{o['path']}": o.get("md5") for s in STAGES for o in lock[s].get("outs", [])}


def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    return env


@pytest.mark.parametrize("profile", [[], ["--workflow-profile", "profiles/local"],
                                     ["--workflow-profile", "profiles/slurm"]], ids=["plain", "local", "slurm"])
def test_fresh_clone_plans_the_whole_graph_with_snakemake(tmp_path, profile):
    """No feedback collected, no remote: Snakemake still plans every stage (the feedback
    store is a stage output, made from the live log's folder, which git carries)."""
    clone_project(tmp_path)
    env = {**_env(), "PYTHONPATH": str(tmp_path)}
    r = subprocess.run(["snakemake", "-n", *profile], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout + r.stderr
    for stage in ("feedback_snapshot", "harvest", "curate", "pretrain", "sft", "deploy"):
        assert re.search(rf"^{stage}\s+1$", out, re.M), stage


def test_two_clones_give_the_same_dvc_lock(tmp_path):
    env = _env()
    hashes = []
    for name in ("a", "b"):
        repo = tmp_path / name
        clone_project(repo, _shorten)
        env["PYTHONPATH"] = str(repo)
        r = subprocess.run(["dvc", "repro", "-f", "pretrain"], cwd=repo, env=env, capture_output=True,
                           text=True, timeout=900)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert (repo / "metrics/timing/pretrain.json").is_file()   # timing is written, just not hashed
        hashes.append(_out_hashes(repo))
    a, b = hashes
    assert len(a) >= 12 and all(a.values())
    assert {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)} == {}
