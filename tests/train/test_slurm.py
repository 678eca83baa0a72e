"""The multi-node SLURM batch script (lmforge.train.slurm).

Its size comes from params (one task per GPU with ``cpus_per_gpu`` CPUs, ``gpu x mem_mb_per_gpu``
of memory a node; a bad value is one line naming its params.yaml key), and on the real one-node
Slurm the script itself runs: sbatch allocates 2 (stand-in) GPUs and 2 tasks, the script turns the
real node list into DeepSpeed's hostfile, and ``deepspeed --launcher slurm`` starts both ranks
through the real ``srun``. Two nodes on separate addresses: test_two_nodes.py.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lmforge.config import ParamsError
from lmforge.train.slurm import batch_script, stage_resources

GPU_RES = {"threads": 16, "mem_mb": 64000, "runtime": 90, "gpu": 4, "cpus_per_gpu": 6,
           "mem_mb_per_gpu": 48000, "slurm_partition": "gpu"}


def test_batch_script_sizes_each_node_from_params_per_gpu(tmp_path):
    dvc = tmp_path / "dvc.yaml"
    dvc.write_text(yaml.safe_dump({"stages": {"pretrain": {"cmd": "python -m stages.pretrain",
                                                           "meta": {"resources": GPU_RES}}}}))
    res = stage_resources(dvc)
    script = batch_script(nodes=2, gpus_per_node=None, resources=res, workdir=str(tmp_path))
    for line in ("#SBATCH --nodes=2", "#SBATCH --gpus-per-node=4", "#SBATCH --ntasks-per-node=4",
                 "#SBATCH --cpus-per-task=6", "#SBATCH --mem=192000M", "#SBATCH --time=01:30:00",
                 "#SBATCH --partition=gpu", "export OMP_NUM_THREADS=6 "):
        assert line in script, line
    eight = batch_script(nodes=2, gpus_per_node=8, resources=res)   # the GPU count on the command line
    assert "#SBATCH --ntasks-per-node=8" in eight and "#SBATCH --mem=384000M" in eight
    assert "#SBATCH --cpus-per-task=6" in eight
    cpu = batch_script(nodes=2, gpus_per_node=0, resources=res)     # no GPUs: one task with the stage's size
    assert "#SBATCH --ntasks-per-node=1" in cpu and "#SBATCH --cpus-per-task=16" in cpu
    assert "#SBATCH --mem=64000M" in cpu and "--gpus-per-node" not in cpu
    path = tmp_path / "pretrain.sbatch"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0


@pytest.mark.parametrize("key, value", [("cpus_per_gpu", 0), ("mem_mb_per_gpu", None), ("cpus_per_gpu", "8")])
def test_a_bad_per_gpu_size_is_one_line_naming_the_key(key, value):
    res = {**GPU_RES, key: value}
    with pytest.raises(ParamsError) as e:
        batch_script(nodes=2, gpus_per_node=None, resources=res)
    assert str(e.value) == f"resources.pretrain.{key} must be an integer >= 1 for the multi-node script, got {value!r}"
    p = subprocess.run([sys.executable, "-m", "lmforge.train.slurm", "--nodes", "0"], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip() == "slurm: --nodes must be >= 1, got 0"


@pytest.mark.slow   # about a minute: two DeepSpeed ranks of the tiny recipe, through sbatch and srun
@pytest.mark.timeout(900)
def test_batch_script_trains_through_sbatch_and_deepspeeds_srun_launch(slurm, token_data, tmp_path):
    from lmforge.testing.pretrain import DIST_VARS, ENV, REPO, TINY_MODEL, tiny_pretrain

    if slurm.gpus < 2:
        pytest.skip("the cluster has fewer than 2 GPUs in its gres")
    work = tmp_path / "job"
    work.mkdir()
    (work / "stages").symlink_to(REPO / "stages")
    recipe = tiny_pretrain(*token_data, work / "models/pretrain", zero_stage=2, max_steps=2,
                           global_batch_tokens=512, eval_every=2, checkpoint_every=2)
    (work / "params.yaml").write_text(yaml.safe_dump({"seed": 1337, "model": TINY_MODEL, "pretrain": recipe}))
    (work / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"pretrain": {"cmd": "python -m stages.pretrain", "meta": {
        "resources": {"threads": 1, "runtime": 15, "gpu": 2, "cpus_per_gpu": 1, "mem_mb_per_gpu": 1500}}}}}))
    script = work / "pretrain.sbatch"
    script.write_text(batch_script(1, None, stage_resources(work / "dvc.yaml"), str(work)))

    env = {**os.environ, **ENV, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(REPO)}
    for k in (*DIST_VARS, "SLURM_JOB_ID", "SLURM_JOB_NODELIST"):
        env.pop(k, None)
    p = subprocess.run(["sbatch", "--parsable", "-o", str(work / "slurm-%j.out"), str(script)], cwd=work,
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    job_id = p.stdout.strip().split(";")[0]
    info = slurm.wait(job_id, timeout=800)
    log = (work / f"slurm-{job_id}.out").read_text()
    assert info["JobState"] == "COMPLETED", (info, log[-4000:])
    # what Slurm allocated is what params asked for: 2 GPUs, one task (and one CPU) each, 2 x 1500 MB
    assert info["TresPerNode"] == "gres:gpu:2" and info["NumTasks"] == "2" and info["CPUs/Task"] == "1"
    assert info["MinMemoryNode"] == "3000M" and info["Partition"] == slurm.partition
    assert (work / f"models/pretrain/hostfile.{job_id}").read_text() == f"{slurm.node} slots=2\n"
    metrics = json.loads((work / "metrics/pretrain.json").read_text())
    assert metrics["world_size"] == 2 and metrics["tokens"] == 2 * 8 * 64
    assert (work / "models/pretrain/hf/config.json").exists()
