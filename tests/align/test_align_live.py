"""DVCLive in the reward stage: TRL's accuracy and margin are kept, and two runs of one
recipe write byte-identical live folders (they are hashed stage outputs)."""
import os
from pathlib import Path

from lmforge.testing.align import SEED


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_reward_live_folder_is_deterministic_and_keeps_trl_metrics(work, sft_dir, pairs_dir):
    from lmforge.align.reward import RewardStageConfig, train_reward
    from lmforge.config import build

    here, trees = os.getcwd(), []
    for i in range(2):
        cwd = work / f"reward-live-{i}"
        cwd.mkdir()
        p = build(RewardStageConfig, {"sft_model": str(sft_dir), "pairs_dir": str(pairs_dir), "out_dir": str(cwd / "rm"),
                                 "train": {"max_steps": 4, "lr": 1e-3, "max_length": 128}}, "reward")
        os.chdir(cwd)
        try:
            train_reward(p, SEED, str(cwd / "work"), live="reward")
        finally:
            os.chdir(here)
        trees.append(tree(cwd / "metrics/live/reward"))
        timing = tree(cwd / "metrics/timing/live/reward")
        assert "plots/metrics/train/runtime.tsv" in timing
    assert trees[0] == trees[1]
    names = set(trees[0])
    assert {"metrics.json", "plots/metrics/loss.tsv", "plots/metrics/accuracy.tsv",
            "plots/metrics/margin.tsv"} <= names, names
    assert not any("runtime" in n or "per_second" in n or "flos" in n for n in names), names
    assert b"timestamp" not in b"".join(trees[0].values())
