"""Pretraining at ZeRO 0-3: two gloo processes give the losses of one at the same global batch.

One launch of two processes (torchrun) trains the tiny recipe at every ZeRO stage, 2 rows per
rank per step; one process trains the same 4 rows a step in one micro-batch. Every logged loss
must agree within 1e-4 relative (only summation order differs), and the two-process runs must
keep the global batch without accumulation.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lmforge.testing.pretrain import ENV, REPO

SCRIPT = Path(__file__).parents[1] / "support" / "pretrain_stages.py"
STAGES = ["0", "1", "2", "3"]


@pytest.mark.slow
def test_every_zero_stage_on_two_processes_equals_one_process(token_data, tmp_path):
    env = {**os.environ, **ENV, "PYTHONPATH": str(REPO)}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE"):
        env.pop(k, None)
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(SCRIPT), str(tmp_path / "two"), *map(str, token_data), "2", *STAGES],
                       env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-4000:])
    two = json.loads(p.stdout.split("RESULT ", 1)[1].splitlines()[0])

    sys.path.insert(0, str(SCRIPT.parent))
    from pretrain_stages import run

    for stage in STAGES:
        one = run(tmp_path / "one", *map(str, token_data), 4, int(stage))
        m1, m2 = one["metrics"], two[stage]["metrics"]
        assert m2["world_size"] == 2 and m2["grad_accum_steps"] == 1 and m2["zero_stage"] == int(stage)
        assert m1["global_batch_tokens"] == m2["global_batch_tokens"] == 4 * 64
        assert len(one["losses"]) == 3
        assert two[stage]["losses"] == pytest.approx(one["losses"], rel=1e-4), stage
        assert m2["val_loss"] == pytest.approx(m1["val_loss"], rel=1e-4), stage
        assert (tmp_path / "two" / f"zero{stage}/models/pretrain/hf/model.safetensors").exists()
