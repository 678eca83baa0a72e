"""Post-training leaves the device to accelerate: CPU here, exactly as before; bf16 only
on a GPU that has it; the DPO reference never trains."""
import pytest
import torch

from lmforge.testing.align import SEED, sft_params
from lmforge.align.common import TrainConfig, trl_kwargs, use_bf16

# SFT losses of the tiny Llama (10 steps) measured with the old `use_cpu=True`
# arguments: leaving the device to accelerate must not move them on a CPU machine.
CPU_SFT_CURVE = [6.6694, 6.5732, 6.443, 6.3993, 6.2898, 6.2153, 6.2071, 6.21, 6.183, 6.0788]


def test_device_is_accelerates_choice_and_bf16_needs_a_gpu(monkeypatch, tmp_path):
    from trl import SFTConfig

    kw = trl_kwargs(TrainConfig(bf16=True), SEED, str(tmp_path))
    assert "use_cpu" not in kw and "no_cuda" not in kw
    args = SFTConfig(**kw)
    assert args.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    assert args.bf16 is gpu_bf16 and use_bf16(None) is gpu_bf16 and use_bf16(False) is False

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert use_bf16(None) is True and use_bf16(True) is True and use_bf16(False) is False
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert use_bf16(None) is False and use_bf16(True) is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="the reference curve is the CPU one")
def test_sft_loss_curve_on_cpu_is_unchanged(work, base_dir, instr_dir):
    from lmforge.align.sft import train_sft

    p = sft_params(base_dir, instr_dir, work / "sft-curve", train={"max_steps": 10})
    model, _, _, curve = train_sft(p, SEED, str(work / "sft-curve-work"))
    assert next(model.parameters()).device.type == "cpu"
    assert [c["loss"] for c in curve] == pytest.approx(CPU_SFT_CURVE, abs=2e-4)


def test_dpo_reference_gets_no_gradients_and_no_optimizer_state(work, sft_dir, pairs_dir):
    import pandas as pd

    from lmforge.align.common import load_causal_lm, load_tokenizer
    from lmforge.align.dpo import DPOStageConfig, dpo_trainer
    from lmforge.config import build

    p = build(DPOStageConfig, {"sft_model": str(sft_dir), "train": {"max_steps": 2, "lr": 1e-3, "max_length": 128}}, "dpo")
    tok, policy, ref = load_tokenizer(sft_dir), load_causal_lm(sft_dir), load_causal_lm(sft_dir)
    before = {k: v.clone() for k, v in ref.state_dict().items()}
    trainer = dpo_trainer(p, policy, ref, tok, pd.read_parquet(pairs_dir / "train.parquet"), SEED,
                          str(work / "dpo-frozen"))
    trainer.train()
    ref_ids = {id(t) for t in trainer.ref_model.parameters()}
    in_optimizer = {id(t) for g in trainer.optimizer.param_groups for t in g["params"]}
    assert trainer.ref_model is ref and ref_ids and not ref_ids & in_optimizer
    assert in_optimizer == {id(t) for t in trainer.model.parameters()}
    assert all(not t.requires_grad and t.grad is None for t in ref.parameters())
    assert all(torch.equal(v, before[k]) for k, v in ref.state_dict().items())
    assert any(not torch.equal(v, before[k]) for k, v in trainer.model.state_dict().items())


@pytest.mark.skipif(torch.cuda.is_available(), reason="the reference curve is the CPU one")
def test_sft_through_trl_deepspeed_zero3_matches_and_saves_whole_weights(work, base_dir, instr_dir, tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from lmforge.align.common import load_causal_lm
    from lmforge.train.dist import free_port

    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port()), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    script = Path(__file__).parents[1] / "support" / "sft_deepspeed.py"
    p = subprocess.run([sys.executable, str(script), str(tmp_path), str(base_dir), str(instr_dir), "3"],
                       env=env, capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, p.stderr[-4000:]
    res = json.loads(p.stdout.split("RESULT ", 1)[1])
    assert res["losses"] == pytest.approx(CPU_SFT_CURVE, abs=2e-4)    # ZeRO-3 partitions the same maths
    saved, base = load_causal_lm(res["out"]), load_causal_lm(base_dir)
    shapes = {k: v.shape for k, v in base.state_dict().items()}
    assert {k: v.shape for k, v in saved.state_dict().items()} == shapes   # gathered, not empty partitions
    assert any(not torch.equal(v, base.state_dict()[k]) for k, v in saved.state_dict().items())


def test_every_model_a_stage_uses_goes_to_the_trainers_device(monkeypatch, base_dir, tmp_path):
    """A fake accelerator (torch's ``meta`` device) stands in for the GPU: each loader, the eval
    harness and the ZeRO-3 evaluation copy must put their model there. Before issue 20 the
    preference generation, DPO's rejection sampling, "before" margins and reward model, the
    eval stages and post-training evaluation under ZeRO-3 all stayed on the CPU."""
    from types import SimpleNamespace

    from lmforge.align import common
    from lmforge.align.reward import load_reward_backbone, load_reward_model
    from lmforge.evals.harness import model_args
    from lmforge.train import dist

    rm_dir = tmp_path / "rm"
    cpu_rm = load_reward_backbone(str(base_dir))[0]
    cpu_rm.save_pretrained(rm_dir)                     # a reward model folder, loaded on this CPU
    fake = torch.device("meta")
    monkeypatch.setattr(dist, "preferred_device", lambda: fake)
    policy = common.load_causal_lm(base_dir)            # preferences' generator, DPO's policy and reference
    backbone, _ = load_reward_backbone(str(base_dir))  # the reward stage's model
    rm = load_reward_model(str(rm_dir))                # DPO's reward model
    for name, m in (("policy", policy), ("reward backbone", backbone), ("reward model", rm)):
        assert {p.device for p in m.parameters()} == {fake}, name
    assert model_args(str(base_dir))["device"] == "meta"    # the eval stages

    # ZeRO-3: the gathered evaluation copy goes to the trainer's device, not the CPU
    monkeypatch.setattr(dist, "preferred_device", lambda: torch.device("cpu"))
    zero3 = common.load_causal_lm(base_dir)
    monkeypatch.setattr(dist, "preferred_device", lambda: fake)
    next(zero3.parameters()).ds_tensor = None
    trainer = SimpleNamespace(model=zero3, model_wrapped=zero3, args=SimpleNamespace(device=fake),
                              accelerator=SimpleNamespace(get_state_dict=lambda m: zero3.state_dict()))
    whole = common.trained_model(trainer, lora=False)
    assert {p.device for p in whole.parameters()} == {fake}

    common.check_devices(fake, reference=policy, reward_model=rm)
    with pytest.raises(RuntimeError, match="reward_model is on cpu, the trainer on meta"):
        common.check_devices(fake, reference=policy, reward_model=cpu_rm)


def test_emulated_bf16_is_not_bf16(monkeypatch):
    """A pre-Ampere GPU: torch says bf16 is supported, but only through emulation (defect 6)."""
    from lmforge.train.dist import native_bf16

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert torch.cuda.is_bf16_supported() and native_bf16() is False and use_bf16(None) is False
