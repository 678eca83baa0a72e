"""``resources.<stage>.gpu`` decides how many processes a training stage runs as (lmforge.train.launch).

The end-to-end case (a plain ``python -m stages.pretrain`` with ``gpu: 2`` training on two
processes) is tests/train/test_zero3_two_processes.py.
"""
import sys

import pytest

from lmforge.config import ParamsError
from lmforge.train import launch


def test_gpu_count_picks_the_launch(monkeypatch):
    for k in ("RANK", "SLURM_NTASKS"):
        monkeypatch.delenv(k, raising=False)
    params = {"resources": {"sft": {"gpu": 4}, "dpo": {"gpu": ""}}}
    assert launch.processes("sft", params) == 4 and launch.processes("dpo", params) == 0
    assert launch.processes("reward", params) == 0
    assert launch.command("sft", 4) == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                        "--nproc_per_node", "4", "-m", "stages.sft"]
    assert not launch.launched()
    launch.relaunch("dpo", params)             # 0 or 1: goes on in this process
    monkeypatch.setenv("RANK", "1")            # a rank torchrun started: never relaunched again
    assert launch.launched() and not launch.is_main()
    launch.relaunch("sft", params)


@pytest.mark.parametrize("bad", [-1, 1.5, "two", True])
def test_a_bad_gpu_count_names_the_key(bad):
    with pytest.raises(ParamsError, match=r"resources\.sft\.gpu"):
        launch.processes("sft", {"resources": {"sft": {"gpu": bad}}})


def test_more_gpus_than_the_node_has_is_refused(monkeypatch):
    import torch

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ParamsError, match="8 GPUs asked, 2 visible"):
        launch.relaunch("pretrain", {"resources": {"pretrain": {"gpu": 8}}})


def test_trl_deepspeed_on_several_cpu_processes_is_refused_in_one_line(monkeypatch):
    """accelerate 1.15 cannot run DeepSpeed over several CPU processes: say so, naming the key."""
    import torch

    from lmforge.align.common import TrainConfig, deepspeed_config, trl_kwargs

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ParamsError, match="train.deepspeed: 'shared' with 2 CPU processes"):
        deepspeed_config(TrainConfig(deepspeed="shared"))
    assert trl_kwargs(TrainConfig(), 0, None)["use_cpu"] is True     # DDP over gloo: one job, not N
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert "use_cpu" not in trl_kwargs(TrainConfig(), 0, None) and deepspeed_config(TrainConfig(deepspeed="shared"))
