"""Helpers for the pretraining tests: the tests' tiny recipe and two ways to run it.

A uniquely named module (not conftest) so that test files can import it even
when several test folders each have their own conftest.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false",
       "TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR",
                                              str(Path.home() / ".cache/lmforge/torch_extensions"))}
for _k, _v in ENV.items():
    os.environ.setdefault(_k, _v)
DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

# the tests' tiny recipe: 1-layer model, 4 rows of 64 tokens a step, checkpoint every 2 steps
TINY_MODEL = {"size": "tiny", "depth": 1}


def tiny_pretrain(tokens: Path, tokenizer: Path, out_dir: Path, **over) -> dict:
    cfg = {"tokens_dir": str(tokens), "tokenizer_dir": str(tokenizer), "out_dir": str(out_dir),
           "max_steps": 6, "global_batch_tokens": 256, "micro_batch_size": 4, "lr": 3e-3,
           "eval_every": 3, "eval_rows": 8, "checkpoint_every": 2, "progress": False, "threads": 1}
    cfg.update(over)
    return cfg


def run_inprocess(workdir: Path, model: dict, pretrain: dict, seed: int = 1337) -> dict:
    """Run pretraining in this process (shares one gloo group across runs)."""
    from lmforge.config import build
    from lmforge.model import ModelConfig
    from lmforge.train.config import PretrainConfig
    from lmforge.train.trainer import Outputs, pretrain as run

    workdir.mkdir(parents=True, exist_ok=True)
    out = Outputs(str(workdir / "metrics/pretrain.json"), str(workdir / "metrics/pretrain_steps.csv"),
                  str(workdir / "metrics/pretrain_eval.csv"))
    import torch

    saved_env = {k: os.environ.get(k) for k in DIST_VARS}
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        return run(build(PretrainConfig, pretrain, "pretrain"), build(ModelConfig, model, "model"), seed, out)
    finally:  # leave the pytest process as other test folders expect it
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_stage(workdir: Path, model: dict, pretrain: dict, seed: int = 1337, env: dict | None = None,
              launcher: list[str] | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    """Run ``python -m stages.pretrain`` (optionally under a launcher) in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "params.yaml").write_text(yaml.safe_dump({"seed": seed, "model": model, "pretrain": pretrain}))
    full_env = {**os.environ, **ENV, "PYTHONPATH": str(REPO), **(env or {})}
    for k in DIST_VARS + ("LOCAL_WORLD_SIZE",):
        full_env.pop(k, None)
    cmd = (launcher or [sys.executable]) + ["-m", "stages.pretrain"]
    return subprocess.run(cmd, cwd=workdir, env=full_env, capture_output=True, text=True, timeout=timeout)
