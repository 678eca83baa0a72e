"""Multi-node pretraining under SLURM: a batch script and a DeepSpeed hostfile.

The script's ``#SBATCH`` lines come from the ``pretrain`` stage's
``meta.resources`` in dvc.yaml (the same resources Snakemake's SLURM profile
submits with, read from params.yaml ``resources.pretrain``), overridable on the
command line. With G GPUs a node runs G ranks, one task each: every task gets
``cpus_per_gpu`` CPUs and the node ``G x mem_mb_per_gpu`` of memory, so the size
follows the GPU count (a fixed 8 GB and 1 CPU a task once starved 8 CUDA ranks).
Without GPUs one task gets the stage's ``threads`` and ``mem_mb``. Inside the allocation the script
turns ``$SLURM_JOB_NODELIST`` into a DeepSpeed hostfile (``host slots=G``) with
``scontrol show hostnames`` and starts ``deepspeed --hostfile`` from the first
node. DeepSpeed is told ``--force_multi``, so one node too starts its ranks through
``srun`` (the allocation's tasks), not through its local launcher.
``LMFORGE_DRY_RUN=1`` makes the script write the hostfile and print the
launch command instead of running it.

Usage: ``python -m lmforge.train.slurm --nodes 2 --gpus-per-node 8 > pretrain.sbatch``
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from lmforge.config import ParamsError

TEMPLATE = """#!/bin/bash
#SBATCH --job-name={job_name}
#SBATCH --nodes={nodes}
#SBATCH --ntasks-per-node={slots}
#SBATCH --cpus-per-task={threads}
#SBATCH --mem={mem_mb}M
#SBATCH --time={runtime}
{extra}set -euo pipefail
cd {workdir}
export OMP_NUM_THREADS={omp} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# stages/pretrain.py runs as a file: keep stages/ (its tokenize.py would shadow the stdlib) off sys.path
export PYTHONSAFEPATH=1
export TORCH_EXTENSIONS_DIR="${{TORCH_EXTENSIONS_DIR:-$HOME/.cache/lmforge/torch_extensions}}"
HOSTFILE="{hostfile_dir}/hostfile.${{SLURM_JOB_ID:-local}}"
mkdir -p "$(dirname "$HOSTFILE")"
scontrol show hostnames "$SLURM_JOB_NODELIST" | awk '{{print $1" slots={slots}"}}' > "$HOSTFILE"
export MASTER_ADDR=$(head -n1 "$HOSTFILE" | cut -d' ' -f1) MASTER_PORT={port}
CMD=({launcher} --hostfile "$HOSTFILE" --master_addr "$MASTER_ADDR" --master_port {port} --launcher {ds_launcher} --force_multi --no_ssh_check stages/pretrain.py)
if [ "${{LMFORGE_DRY_RUN:-0}}" = 1 ]; then echo "${{CMD[@]}}"; exit 0; fi
exec "${{CMD[@]}}"
"""


def stage_resources(dvc_yaml: str | Path = "dvc.yaml", stage: str = "pretrain") -> dict:
    """The stage's ``meta.resources`` as the Snakefile reads them (``${...}`` from params.yaml)."""
    from lmforge.orchestrate import rules_from_dvc

    if not Path(dvc_yaml).exists():
        return {}
    spec = next((s for s in rules_from_dvc(dvc_yaml) if s.name == stage), None)
    return {"threads": spec.threads, **spec.resources} if spec else {}


def minutes_to_time(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def _positive(resources: dict, key: str, default: int | None = None) -> int:
    """``resources[key]`` as an int >= 1; ParamsError naming params.yaml's key otherwise."""
    value = resources.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        where = f"resources.pretrain.{key}" if key in ("cpus_per_gpu", "mem_mb_per_gpu", "gpu") \
            else f"dvc.yaml stages.pretrain.meta.resources.{key}"
        raise ParamsError(f"{where} must be an integer >= 1 for the multi-node script, got {value!r}")
    return value


def node_size(gpus: int, resources: dict) -> tuple[int, int, int]:
    """(tasks, CPUs per task, memory in MB) per node: one task per GPU, else one task."""
    if gpus > 0:
        return gpus, _positive(resources, "cpus_per_gpu"), gpus * _positive(resources, "mem_mb_per_gpu")
    return 1, _positive(resources, "threads", 2), _positive(resources, "mem_mb", 8000)


def batch_script(nodes: int, gpus_per_node: int | None, resources: dict, workdir: str = ".",
                 partition: str | None = None, account: str | None = None, port: int = 29500,
                 hostfile_dir: str = "models/pretrain") -> str:
    if nodes < 1:
        raise ParamsError(f"--nodes must be >= 1, got {nodes}")
    gpus = gpus_per_node if gpus_per_node is not None else int(resources.get("gpu") or 0)
    slots, cpus, mem_mb = node_size(gpus, resources)
    extra = ""
    if gpus > 0:
        extra += f"#SBATCH --gpus-per-node={gpus}\n"
    partition = partition or resources.get("slurm_partition")
    account = account or resources.get("slurm_account")
    if partition:
        extra += f"#SBATCH --partition={partition}\n"
    if account:
        extra += f"#SBATCH --account={account}\n"
    return TEMPLATE.format(
        job_name="lmforge-pretrain", nodes=nodes, threads=cpus, mem_mb=mem_mb,
        runtime=minutes_to_time(int(resources.get("runtime", 60))), extra=extra,
        workdir=shlex.quote(str(workdir)), omp=cpus, hostfile_dir=hostfile_dir,
        slots=slots, launcher="deepspeed", port=port, ds_launcher="slurm")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--gpus-per-node", type=int, default=None)
    ap.add_argument("--dvc-yaml", default="dvc.yaml")
    ap.add_argument("--workdir", default=str(Path.cwd()))
    ap.add_argument("--partition")
    ap.add_argument("--account")
    ap.add_argument("--out", help="write the script here instead of stdout")
    a = ap.parse_args(argv)
    text = batch_script(a.nodes, a.gpus_per_node, stage_resources(a.dvc_yaml), a.workdir,
                        a.partition, a.account)
    if a.out:
        from lmforge.io import write_text

        write_text(a.out, text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    from lmforge.stage import run_stage

    run_stage(main)   # a bad resource: one line naming its params.yaml key, exit code 2
