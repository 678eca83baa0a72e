"""Every stage ends the same way: its result, or one line naming the key or file (exit 2 for bad input)."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lmforge.config import ParamsError
from lmforge.stage import STAGE_TIMING_DIR, run_stage

REPO = Path(__file__).resolve().parents[2]
STAGES = sorted(p for p in (REPO / "stages").glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("path", STAGES, ids=lambda p: p.stem)
def test_every_stage_ends_through_run_stage(path):
    tree = ast.parse(path.read_text())
    guard = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
    assert [ast.unparse(s) for g in guard for s in g.body] == ["run_stage(main)"]
    handlers = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, (ast.Try, ast.Raise))
                and "SystemExit" in ast.unparse(n)]
    assert not handlers, "stages leave error handling to lmforge.stage.run_stage"


def _fails(err: Exception):
    def main():
        raise err
    return main


def test_run_stage_turns_bad_input_into_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        run_stage(_fails(ParamsError("params.yaml: tokenize.seq_len: must be >= 8,\n got -5")))
    assert e.value.code == 2
    assert capsys.readouterr().err == "test_stages: params.yaml: tokenize.seq_len: must be >= 8, got -5\n"


def test_run_stage_keeps_the_traceback_of_a_bug(monkeypatch):
    with pytest.raises(KeyError):
        run_stage(_fails(KeyError("bug")))
    monkeypatch.setenv("LMFORGE_TRACEBACK", "1")
    with pytest.raises(ParamsError):
        run_stage(_fails(ParamsError("x")))


def _set(params: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    node = params
    for p in parents:
        node = node[p]
    node[last] = value


@pytest.mark.parametrize("stage,key,value", [
    ("tokenize", "tokenize.seq_len", -5),
    ("curate", "data.workers", 0),
    ("pretrain", "pretrain.lr", "fast"),
    ("harvest", "harvest.include_pii", "yes"),
    ("sft", "sft.train.max_steps", "many"),
    ("validate_tokens", "checks.tokens.required_splits", 3),
])
def test_stage_with_a_bad_param_exits_2_with_one_line_naming_the_key(tmp_path, stage, key, value):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    _set(params, key, value)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {k: v for k, v in os.environ.items() if k != "LMFORGE_PARAMS"}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    p = subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert p.stderr.startswith(f"{stage}: ") and key in p.stderr, p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["params.yaml"]  # nothing written


def test_a_stage_dvc_runs_leaves_its_wall_time_and_only_then(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_STAGE", raising=False)
    with pytest.raises(SystemExit):
        run_stage(lambda: None)                                   # not run by DVC: nothing written
    assert not (tmp_path / "metrics").exists()
    monkeypatch.setenv("DVC_STAGE", "eval_sft")
    with pytest.raises(SystemExit):
        run_stage(_fails(ParamsError("params.yaml: evals.limit: bad")))   # failed: nothing written
    assert not (tmp_path / "metrics").exists()
    with pytest.raises(SystemExit) as e:
        run_stage(lambda: None)
    assert e.value.code == 0
    got = json.loads((tmp_path / STAGE_TIMING_DIR / "eval_sft.json").read_text())
    assert set(got) == {"seconds"} and got["seconds"] >= 0


def test_a_stage_that_opened_a_process_group_closes_it_before_exit(tmp_path):
    """run_stage ends the rank's torch.distributed group after the stage's work, so gloo's threads
    are not torn down at interpreter exit (a SIGABRT that torchrun reports as a failed stage)."""
    script = tmp_path / "stage.py"
    script.write_text(
        "import torch.distributed as dist\n"
        "from lmforge.stage import run_stage\n"
        "def main():\n"
        f"    dist.init_process_group('gloo', init_method='file://{tmp_path}/store', rank=0, world_size=1)\n"
        "    import atexit\n"
        "    atexit.register(lambda: print('initialized at exit:', dist.is_initialized()))\n"
        "run_stage(main)\n")
    p = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.returncode == 0, p.stderr[-2000:]
    assert "initialized at exit: False" in p.stdout
