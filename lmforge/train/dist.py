"""Process-group setup for DeepSpeed on CPU (gloo) and GPU (nccl).

Launched by ``torchrun``/``deepspeed`` the usual environment variables are set;
a plain ``python -m stages.pretrain`` gets a one-process group on a free local
port, because DeepSpeed would otherwise fall back to MPI discovery and fail on a
missing mpi4py (docs: stack-pitfalls).
"""
from __future__ import annotations

import atexit
import os
import socket
import tempfile


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup() -> tuple[int, int, "object"]:
    """Initialise the process group once; return (rank, world_size, device)."""
    import deepspeed
    import torch
    import torch.distributed as dist

    if "RANK" not in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        # started by srun (DeepSpeed's slurm launcher): ranks come from SLURM
        os.environ.update(RANK=os.environ["SLURM_PROCID"], WORLD_SIZE=os.environ["SLURM_NTASKS"],
                          LOCAL_RANK=os.environ.get("SLURM_LOCALID", "0"))
        os.environ.setdefault("MASTER_PORT", "29500")
    init_method = None
    if "RANK" not in os.environ:
        # One process: a file rendezvous, not a TCP port that another process could take
        # between choosing it and listening on it (seen as EADDRINUSE on a busy machine).
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
        fd, path = tempfile.mkstemp(prefix="lmforge-pg-")
        os.close(fd)
        atexit.register(lambda: os.path.exists(path) and os.remove(path))
        init_method = f"file://{path}"
    os.environ.setdefault("LOCAL_RANK", os.environ["RANK"])
    cuda = torch.cuda.is_available()
    if not dist.is_initialized():
        deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo", verbose=False,
                                   init_method=init_method, rank=int(os.environ["RANK"]),
                                   world_size=int(os.environ["WORLD_SIZE"]))
    local = int(os.environ["LOCAL_RANK"])
    if cuda:
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return dist.get_rank(), dist.get_world_size(), device


def native_bf16() -> bool:
    """A GPU with bf16 in hardware (Ampere or newer). ``is_bf16_supported()`` alone also counts
    emulation, which pre-Ampere GPUs offer at a fraction of fp32's speed: train those in fp32."""
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def preferred_device():
    """The device this process computes on: its GPU (``cuda:LOCAL_RANK``) when there is one, else
    the CPU - the choice DeepSpeed and accelerate make, for every model a stage uses."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def barrier():
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def all_reduce_sum(values: list[float], device) -> list[float]:
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t.tolist()
