"""Stage ``pretrain``: packed tokens + tokenizer -> checkpoints, HF model, metrics.

One process: ``python -m stages.pretrain`` (``resources.pretrain.gpu: N`` > 1 relaunches it as N). Several (CPU or GPU):
``torchrun --nproc_per_node 2 -m stages.pretrain`` or
``deepspeed --num_gpus 8 --module stages.pretrain``; multi-node SLURM:
``python -m lmforge.train.slurm --nodes N --gpus-per-node G > pretrain.sbatch``.
"""
from __future__ import annotations

import logging
import os

from lmforge.config import ParamsError, load_params, section
from lmforge.model import ModelConfig
from lmforge.stage import run_stage
from lmforge.train.config import PretrainConfig
from lmforge.train.launch import relaunch

log = logging.getLogger(__name__)


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    params = load_params()
    relaunch("pretrain", params)   # resources.pretrain.gpu: N > 1 -> N processes under torchrun
    model_cfg = section(ModelConfig, "model", params)
    cfg = section(PretrainConfig, "pretrain", params)
    seed = params.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ParamsError(f"params.yaml: seed: expected an integer, got {seed!r}")
    from lmforge.train.trainer import pretrain

    m = pretrain(cfg, model_cfg, seed)
    if os.environ.get("RANK", "0") == "0":
        log.info(f"pretrain: {m['steps']} steps, {m['tokens']:,} tokens, val_ppl {m['init_val_ppl']:.1f} -> "
              f"{m['val_ppl']:.1f} ({m['ppl_reduction']:.1f}x), {m['tokens_per_s']:,.0f} tok/s")
    return 0


if __name__ == "__main__":
    run_stage(main)
