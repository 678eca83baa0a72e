"""SFT, reward modelling and DPO on the tests' tiny Llama, in one launched process group.

``python align_dist.py WORK BASE INSTR PER_DEVICE_BATCH`` (plain, or under
``torch.distributed.run --nproc_per_node N``) trains each stage a few steps through the
stages' own code and prints, on rank 0, ``RESULT {json}``: each stage's per-step loss curve.
One process at batch 8 and two at batch 4 see the same 8 examples a step, so the curves
must agree (issue 20, defect 1: SFT's loss was 1/N on N ranks).
"""
import json
import os
import sys
from pathlib import Path

import pandas as pd

from lmforge.testing.align import SEED, sft_params

STEPS = 3


def pairs(instr: str, n: int) -> pd.DataFrame:
    df = pd.read_parquet(Path(instr) / "train.parquet").head(n)
    out = pd.DataFrame({"prompt": df.prompt, "chosen": df.response, "source": "test",
                        "rejected": df.response.sample(frac=1, random_state=0).to_numpy()})
    return out[out.chosen != out.rejected].reset_index(drop=True)


def main(work: Path, base: str, instr: str, batch: int) -> dict:
    from lmforge.align.common import load_causal_lm, load_tokenizer
    from lmforge.align.dpo import DPOStageConfig, dpo_trainer
    from lmforge.align.reward import RewardStageConfig, train_reward
    from lmforge.align.sft import train_sft
    from lmforge.config import build

    train = {"max_steps": STEPS, "batch_size": batch, "lr": 1e-3, "max_length": 96}
    out = {}
    _, _, _, curve = train_sft(sft_params(base, instr, work / "sft", train=train), SEED, str(work / "sft-work"))
    out["sft"] = [c["loss"] for c in curve]

    df = pairs(instr, 40)
    # One copy per rank: ranks writing one file at once let a rank read another's half-written parquet
    # (CI run of stop 28: rank 1 died before the first barrier). The stages read pairs a prior stage wrote.
    pairs_dir = work / f"pairs-rank{os.environ.get('RANK', '0')}"
    pairs_dir.mkdir(parents=True, exist_ok=True)
    df.head(32).to_parquet(pairs_dir / "train.parquet")
    df.tail(8).to_parquet(pairs_dir / "val.parquet")
    rp = build(RewardStageConfig, {"sft_model": base, "pairs_dir": str(pairs_dir), "out_dir": str(work / "rm"),
                                   "train": train}, "reward")
    _, curve = train_reward(rp, SEED, str(work / "rm-work"))
    out["reward"] = [c["loss"] for c in curve]

    dp = build(DPOStageConfig, {"sft_model": base, "train": train}, "dpo")
    trainer = dpo_trainer(dp, load_causal_lm(base), load_causal_lm(base), load_tokenizer(base), df.head(32), SEED,
                          str(work / "dpo-work"))
    trainer.train()
    out["dpo"] = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return out


if __name__ == "__main__":
    from lmforge.stage import close_process_group

    res = main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]))
    if os.environ.get("RANK", "0") == "0":
        print("RESULT " + json.dumps(res))
    close_process_group()   # as run_stage does after a stage's work
