"""The TRL passthrough (``sft.trl_args``, ``reward.trl_args``, ``dpo.trl_args``): any config field
reaches TRL; an unknown field, a field lmforge sets from its own params, or a value TRL refuses
fails at start in one line naming the key."""
import pytest

from lmforge.testing.align import SEED, sft_params
from lmforge.align import trl_args
from lmforge.align.sft import build_trainer
from lmforge.config import ParamsError


def test_a_passthrough_field_reaches_the_trainer_and_wins_over_lmforge_defaults(work, base_dir, instr_dir):
    p = sft_params(base_dir, instr_dir, work / "x", trl_args={"max_grad_norm": 0.25, "lr_scheduler_type": "linear",
                                                              "neftune_noise_alpha": 5.0})
    trainer, _, _ = build_trainer(p, SEED, str(work / "w-trl"))
    assert trainer.args.max_grad_norm == 0.25 and trainer.args.neftune_noise_alpha == 5.0
    assert trainer.args.lr_scheduler_type == "linear"   # lmforge's default is cosine
    plain, _, _ = build_trainer(sft_params(base_dir, instr_dir, work / "x"), SEED, str(work / "w-plain"))
    assert plain.args.lr_scheduler_type == "cosine" and plain.args.max_grad_norm == 1.0


def test_an_unknown_field_fails_with_a_did_you_mean(work, base_dir, instr_dir):
    from trl import DPOConfig, RewardConfig

    p = sft_params(base_dir, instr_dir, work / "x", trl_args={"neftune_noise_alph": 5.0})
    with pytest.raises(ParamsError, match=r"sft\.trl_args\.neftune_noise_alph: not a field of TRL's SFTConfig "
                                          r"\(did you mean 'neftune_noise_alpha'\?\)"):
        build_trainer(p, SEED, str(work / "w-typo"))
    with pytest.raises(ParamsError, match=r"dpo\.trl_args\.los_type: .*DPOConfig \(did you mean 'loss_type'\?\)"):
        trl_args.check(DPOConfig, {"los_type": ["ipo"]}, "dpo.trl_args")
    with pytest.raises(ParamsError, match=r"reward\.trl_args\.center_reward: .*RewardConfig"):
        trl_args.check(RewardConfig, {"center_reward": 0.01}, "reward.trl_args")
    assert trl_args.check(RewardConfig, {"center_rewards_coefficient": 0.01}, "reward.trl_args")


@pytest.mark.parametrize("key, home", [("learning_rate", "train.lr"), ("max_steps", "train.max_steps"),
                                       ("beta", "dpo.beta"), ("save_steps", "checkpoints.every"),
                                       ("output_dir", "checkpoints.dir"), ("seed", "seed")])
def test_a_field_lmforge_sets_is_refused_naming_where_to_set_it(key, home):
    from trl import DPOConfig

    with pytest.raises(ParamsError, match=rf"dpo\.trl_args\.{key}: set by lmforge from .*{home}.*; set it there"):
        trl_args.check(DPOConfig, {key: 1}, "dpo.trl_args")


def test_a_value_trl_refuses_is_one_line_naming_the_key(work, base_dir, instr_dir):
    p = sft_params(base_dir, instr_dir, work / "x", trl_args={"optim": "no_such_optimizer"})
    with pytest.raises(ParamsError, match=r"sft\.trl_args \['optim'\]: refused by TRL's SFTConfig: ") as e:
        build_trainer(p, SEED, str(work / "w-bad"))
    assert "\n" not in str(e.value)
    with pytest.raises(ParamsError, match=r"sft\.trl_args: expected a mapping"):
        sft_params(base_dir, instr_dir, work / "x", trl_args=["max_grad_norm"])


def test_lmforge_check_finds_a_passthrough_typo_before_any_stage_runs():
    from lmforge.testing.align import REPO

    from lmforge.check import check
    from lmforge.config import load_params

    params = load_params(REPO / "params.yaml")
    assert check(params, "params.yaml") == []
    params["dpo"]["trl_args"] = {"los_type": ["ipo"]}
    params["reward"]["trl_args"] = {"learning_rate": 0.1}
    assert check(params, "params.yaml") == [
        "params.yaml: reward.trl_args.learning_rate: set by lmforge from train.lr; set it there, not in reward.trl_args",
        "params.yaml: dpo.trl_args.los_type: not a field of TRL's DPOConfig (did you mean 'loss_type'?)"]
