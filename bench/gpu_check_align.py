"""The post-training half of the GPU check: SFT and DPO at the real ``small`` shape, checked.

``gpu_check.py`` runs this after pretraining. The base is the pipeline's own Llama built by
``lmforge.model.build_model`` at ``small`` (12 layers x 768, 12 heads of 64, SwiGLU 2048,
vocabulary 50304 as in the pretraining check, context 1024), saved with the tests' tokenizer
(its 320 ids are the first rows; the others are never seen). It is fine-tuned on the
committed instruction sample with ``lmforge.align.sft.build_trainer``, then trained with DPO
against a frozen copy with ``lmforge.align.dpo.dpo_trainer``: the TRL configs the stages
build, with the pipeline's DeepSpeed config (``train.deepspeed: shared``, ZeRO-1) and bf16
where the GPU has it. Preference pairs are the sample's responses against another prompt's
response, enough to measure speed.

It prints samples/s (TRL's ``train_samples_per_second``) and the peak memory (the device's
allocator peak on a GPU, the process's max RSS on CPU), and CHECK lines for what only a GPU
shows (issue 20): bf16 in the trainers, every model of DPO on the trainer's device (reference,
reward model, the trained policy), the eval harness on the GPU.
"""
from __future__ import annotations

import resource
from pathlib import Path

from _support import REPO  # first: this checkout's lmforge on sys.path (bench/_support.py)

SAMPLE = REPO / "data" / "instructions" / "pairs.parquet"


def _peak_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run(name: str, trainer) -> dict:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    m = trainer.train().metrics
    res = {"samples_per_s": round(m["train_samples_per_second"], 2), "peak_mb": round(_peak_mb()),
           "loss": round(m["train_loss"], 4), "bf16": bool(trainer.args.bf16),
           "device": str(trainer.args.device)}
    print(f"gpu_check {name}: {res['samples_per_s']} samples/s, peak {res['peak_mb']} MB, "
          f"loss {res['loss']}, bf16 {res['bf16']}, device {res['device']}")
    return res


def real_base(out: Path, cpu_smoke: bool) -> str:
    """The pipeline's Llama at ``small`` (1 layer in the CPU smoke) with the tests' tokenizer."""
    from lmforge.testing.tiny_model import build_tokenizer

    from lmforge.model import ModelConfig, build_model

    tok = build_tokenizer()
    special = {"bos_id": tok.bos_token_id, "eos_id": tok.eos_token_id, "pad_id": tok.pad_token_id}
    cfg = ModelConfig(size="small", depth=1 if cpu_smoke else None)
    model = build_model(cfg, 512 if cpu_smoke else 50304, 256 if cpu_smoke else 1024, special)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return str(out)


def align_check(work: Path, cpu_smoke: bool, check, steps: int = 60, batch: int = 16) -> dict:
    """SFT then DPO on one device; returns their figures. ``check(name, ok, detail)`` records a CHECK line."""
    import pandas as pd

    from lmforge.align.common import check_devices, load_causal_lm, load_tokenizer, with_context
    from lmforge.align.dpo import DPOStageConfig, dpo_trainer
    from lmforge.align.instructions import InstructionsConfig, check_and_split
    from lmforge.align.reward import load_reward_backbone
    from lmforge.align.sft import SFTStageConfig, build_trainer
    from lmforge.config import build
    from lmforge.evals.harness import model_args
    from lmforge.train.dist import native_bf16, preferred_device

    base = real_base(work / "align-base", cpu_smoke)
    instr = work / "instructions"
    check_and_split(InstructionsConfig(path=str(SAMPLE), out_dir=str(instr)), str(work / "instructions-gx.json"))
    if cpu_smoke:
        steps, batch = 2, 2
    train = {"max_steps": steps, "batch_size": batch, "lr": 1e-4, "threads": 1, "deepspeed": "shared",
             "zero_stage": 1}

    sft = with_context(build(SFTStageConfig, {"base_model": base, "data_dir": str(instr), "out_dir": str(work / "sft"),
                                         "feedback_dir": str(work / "no-feedback"), "train": train}, "sft"), base)
    trainer, _, _ = build_trainer(sft, 0, str(work / "sft-work"))
    out = {"sft": _run("sft", trainer)}
    check("sft trains in bf16 exactly where the GPU has it in hardware", out["sft"]["bf16"] == native_bf16(),
          f"bf16 {out['sft']['bf16']}")
    del trainer

    df = pd.read_parquet(SAMPLE).head(max(64, steps * batch))
    pairs = pd.DataFrame({"prompt": df.prompt, "chosen": df.response,
                          "rejected": df.response.sample(frac=1, random_state=0).to_numpy()})
    pairs = pairs[pairs.chosen != pairs.rejected].reset_index(drop=True)
    dpo = with_context(build(DPOStageConfig, {"sft_model": base, "train": train}, "dpo"), base)
    tok = load_tokenizer(base)
    ref, (rm, _) = load_causal_lm(base), load_reward_backbone(base)
    trainer = dpo_trainer(dpo, load_causal_lm(base), ref, tok, pairs, 0, str(work / "dpo-work"))
    try:
        check_devices(trainer.args.device, reference=ref, reward_model=rm, policy=trainer.model)
        check("dpo reference, reward model and policy on the trainer's device", True, str(trainer.args.device))
    except RuntimeError as e:
        check("dpo reference, reward model and policy on the trainer's device", False, str(e))
    out["dpo"] = _run("dpo", trainer)
    args = model_args(base)
    check("eval harness runs on this device (bf16 where native)",
          args["device"] == str(preferred_device()) and (args["dtype"] == "bfloat16") == native_bf16(), str(args))
    return out
