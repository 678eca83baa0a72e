"""``resources.<stage>.gpu: N`` runs a training stage as N processes, under dvc repro and Snakemake alike.

Both schedulers run dvc.yaml's ``python -m stages.<name>``: one process. On a node with N
GPUs that process used one of them (pretraining) or all of them through ``nn.DataParallel``
(TRL's trainers), while the scheduler had reserved N. So every training stage calls
:func:`relaunch` first: when N > 1 and no launcher started it (no ``RANK`` in the
environment, not one of several srun tasks), it runs itself again under
``torchrun --standalone --nproc_per_node N`` and exits with torchrun's code. Each rank then
takes its own GPU (``LOCAL_RANK``): DeepSpeed's process group for pretraining, DDP through
accelerate for TRL's trainers. On a machine without GPUs the N processes run on the CPU
(gloo), which is how the tests check it; asking for more GPUs than the node shows is an error.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys

from lmforge.config import ParamsError, load_params

log = logging.getLogger(__name__)


def processes(stage: str, params: dict | None = None) -> int:
    """``resources.<stage>.gpu`` from params.yaml (0 when unset); a bad value is a ParamsError."""
    params = load_params() if params is None else params
    n = ((params.get("resources") or {}).get(stage) or {}).get("gpu", 0)
    n = 0 if n in (None, "") else n
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ParamsError(f"params.yaml: resources.{stage}.gpu: expected a whole number >= 0, got {n!r}")
    return n


def launched() -> bool:
    """Whether a launcher (torchrun, deepspeed, srun with several tasks) already started this process."""
    return "RANK" in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) > 1


def command(stage: str, n: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n),
            "-m", f"stages.{stage}"]


def relaunch(stage: str, params: dict | None = None) -> None:
    """Run ``stages.<stage>`` as ``resources.<stage>.gpu`` processes and exit, when that is > 1."""
    n = processes(stage, params)
    if n <= 1 or launched():
        return
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() < n:
        raise ParamsError(f"params.yaml: resources.{stage}.gpu: {n} GPUs asked, "
                          f"{torch.cuda.device_count()} visible on this node")
    where = f"{n} GPUs" if torch.cuda.is_available() else f"{n} CPU processes (gloo; no GPU here)"
    log.info("resources.%s.gpu = %d: running as %s under torchrun", stage, n, where)
    raise SystemExit(subprocess.call(command(stage, n)))


def is_main() -> bool:
    """Rank 0 (or the only process): the one that evaluates, writes metrics and saves the model."""
    return os.environ.get("RANK", "0") == "0"
