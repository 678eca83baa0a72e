"""Two "nodes" under the stand-in SLURM: the real batch script, DeepSpeed's slurm launcher, srun.

Why a stand-in here, and only here: the SLURM-path tests run against a real one-node Slurm
(tests/support/slurm.py; the batch script on it: test_slurm.py), but one node cannot express two
nodes on separate addresses, a multi-host hostfile and ranks meeting at another host's address.
So ``scontrol``/``srun``/``sinfo`` are tests/support/fake_slurm's, and nothing else is.

The script from ``lmforge.train.slurm`` runs as sbatch would start it on the
allocation ``127.0.0.[2-3]``: scontrol expands the nodes into the hostfile,
``deepspeed --launcher slurm`` calls ``srun -n 2``, the stand-in srun starts one
task per node, and the two meet at the first node's address (MASTER_ADDR
127.0.0.2). Four ZeRO-2 steps, checkpoints and the export must equal one process
training the same global batch (8 rows a step).
"""
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.orchestration import FAKE_SLURM
from lmforge.testing.pretrain import DIST_VARS, ENV, REPO, TINY_MODEL, run_inprocess, tiny_pretrain, val_loss_of

from lmforge.train.slurm import batch_script, stage_resources



def losses(work):
    return [float(r["loss"]) for r in csv.DictReader(open(work / "metrics/pretrain_steps.csv"))]


def test_two_node_batch_script_trains_like_one_process(token_data, tmp_path):
    def recipe(work):
        return tiny_pretrain(*token_data, work / "models/pretrain", zero_stage=2, max_steps=4,
                             global_batch_tokens=512, eval_every=4, checkpoint_every=2)

    work, bin_, state = tmp_path / "job", tmp_path / "bin", tmp_path / "slurm"
    for d in (work, bin_, state):
        d.mkdir()
    for tool in ("scontrol", "srun", "sinfo"):
        shutil.copy(FAKE_SLURM / tool, bin_ / tool)
        (bin_ / tool).chmod(0o755)
    (work / "stages").symlink_to(REPO / "stages")
    (work / "params.yaml").write_text(yaml.safe_dump({"seed": 1337, "model": TINY_MODEL, "pretrain": recipe(work)}))
    (work / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"pretrain": {
        "cmd": "python -m stages.pretrain", "meta": {"resources": {"threads": 1, "gpu": 0}}}}}))
    script = work / "pretrain.sbatch"
    script.write_text(batch_script(2, None, stage_resources(work / "dvc.yaml"), str(work)))

    env = {**os.environ, **ENV, "PATH": f"{bin_}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(REPO), "FAKE_SLURM_DIR": str(state), "SLURM_JOB_ID": "7",
           "SLURM_JOB_NODELIST": "127.0.0.[2-3]"}
    for k in DIST_VARS:
        env.pop(k, None)
    p = subprocess.run(["bash", str(script)], cwd=work, env=env, capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-4000:])
    assert (work / "models/pretrain/hostfile.7").read_text() == "127.0.0.2 slots=1\n127.0.0.3 slots=1\n"
    assert "-n 2" in (state / "srun.log").read_text()

    two = json.loads((work / "metrics/pretrain.json").read_text())
    one_dir = tmp_path / "one"
    one = run_inprocess(one_dir, TINY_MODEL, recipe(one_dir))
    assert two["world_size"] == 2 and two["grad_accum_steps"] == 1 and one["grad_accum_steps"] == 2
    assert two["tokens"] == one["tokens"] == 4 * 8 * 64
    assert losses(work) == pytest.approx(losses(one_dir), rel=1e-4)
    assert two["val_loss"] == pytest.approx(one["val_loss"], rel=1e-4)
    loss, _ = val_loss_of(work / "models/pretrain/hf", token_data[0], 8, 4)   # the export loads and agrees
    assert loss == pytest.approx(val_loss_of(one_dir / "models/pretrain/hf", token_data[0], 8, 4)[0], rel=1e-4)
