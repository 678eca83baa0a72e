"""The SLURM batch script: resources from dvc.yaml, hostfile from the allocation (dry run)."""
import os
import stat
import subprocess

import yaml

from lmforge.train.slurm import batch_script, stage_resources


def test_batch_script_dry_run(tmp_path):
    dvc = tmp_path / "dvc.yaml"
    dvc.write_text(yaml.safe_dump({"stages": {"pretrain": {"cmd": "python -m stages.pretrain", "meta": {
        "resources": {"threads": 16, "mem_mb": 64000, "runtime": 90, "gpu": 4,
                      "slurm_partition": "gpu"}}}}}))
    res = stage_resources(dvc)
    script = batch_script(nodes=2, gpus_per_node=None, resources=res, workdir=str(tmp_path),
                          hostfile_dir=str(tmp_path / "hf"))
    for line in ("#SBATCH --nodes=2", "#SBATCH --gpus-per-node=4", "#SBATCH --mem=64000M",
                 "#SBATCH --time=01:30:00", "#SBATCH --partition=gpu", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --ntasks-per-node=4"):
        assert line in script
    path = tmp_path / "pretrain.sbatch"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    # a stand-in scontrol expands the allocation's node list, as the real one does
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    fake = bin_ / "scontrol"
    fake.write_text('#!/bin/sh\n[ "$1 $2" = "show hostnames" ] || exit 1\n'
                    'echo "$3" | sed "s/gpu\\[\\([0-9]*\\)-\\([0-9]*\\)\\]/gpu\\1 gpu\\2/" | tr " " "\\n"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "gpu[07-08]",
           "SLURM_JOB_ID": "42", "LMFORGE_DRY_RUN": "1"}
    p = subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "hf/hostfile.42").read_text() == "gpu07 slots=4\ngpu08 slots=4\n"
    cmd = p.stdout.split()
    assert cmd[0] == "deepspeed" and cmd[cmd.index("--hostfile") + 1] == str(tmp_path / "hf/hostfile.42")
    assert cmd[cmd.index("--master_addr") + 1] == "gpu07" and "--launcher" in cmd
    assert cmd[-1] == "stages/pretrain.py"   # DeepSpeed's slurm runner ignores --module
