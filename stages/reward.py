"""Stage `reward`: train the reward model on preference pairs, report held-out accuracy."""
from lmforge.align.reward import RewardStageConfig, train_reward
from lmforge.config import load_params, section
from lmforge.io import write_csv, write_json
from lmforge.stage import run_stage
from lmforge.train.launch import is_main, relaunch


def main() -> None:
    relaunch("reward")   # resources.reward.gpu: N > 1 -> N processes under torchrun
    p = section(RewardStageConfig, "reward")
    metrics, curve = train_reward(p, load_params()["seed"], live="reward")
    if not is_main():
        return
    write_json("metrics/reward.json", metrics)
    write_csv("metrics/reward_loss.csv", curve)
    print(metrics)


if __name__ == "__main__":
    run_stage(main)
