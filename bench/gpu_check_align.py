"""The post-training half of the GPU check: SFT and DPO through the stages' own trainers.

``gpu_check.py`` runs this after pretraining. A random Llama of the ``small`` shape
(12 layers x 768, the test tokenizer) is fine-tuned on the committed instruction
sample with ``lmforge.align.sft.build_trainer``, then trained with DPO against a
frozen copy of itself with ``lmforge.align.dpo.dpo_trainer``: the same TRL configs
the ``sft`` and ``dpo`` stages build, so the device, bf16 and DeepSpeed choices
(``lmforge.align.common.trl_kwargs``) are what gets checked. Preference pairs are
the sample's responses against another prompt's response, enough to measure speed.
It prints samples/s (TRL's own ``train_samples_per_second``) and the peak memory:
the device's allocator peak on a GPU, the process's max RSS on CPU.
"""
from __future__ import annotations

import resource
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
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


def align_check(work: Path, cpu_smoke: bool, steps: int = 60, batch: int = 16) -> dict:
    """SFT then DPO on one device; returns their figures."""
    import pandas as pd

    sys.path.insert(0, str(REPO / "tests"))  # support.tiny_model: the tests' model builder
    from support.tiny_model import build_tiny_model

    from lmforge.align.common import load_causal_lm, load_tokenizer, with_context
    from lmforge.align.dpo import DPOStageConfig, dpo_trainer
    from lmforge.align.instructions import InstructionsConfig, check_and_split
    from lmforge.align.sft import SFTStageConfig, build_trainer
    from lmforge.config import build

    shape = dict(hidden_size=64, layers=1) if cpu_smoke else dict(hidden_size=768, layers=12)
    base = str(build_tiny_model(work / "align-base", max_position_embeddings=512, **shape))
    instr = work / "instructions"
    check_and_split(InstructionsConfig(path=str(SAMPLE), out_dir=str(instr)), str(work / "instructions-gx.json"))
    if cpu_smoke:
        steps, batch = 2, 2
    train = {"max_steps": steps, "batch_size": batch, "lr": 1e-4, "threads": 1}

    sft = with_context(build(SFTStageConfig, {"base_model": base, "data_dir": str(instr), "out_dir": str(work / "sft"),
                                         "feedback_dir": str(work / "no-feedback"), "train": train}, "sft"), base)
    trainer, _, _ = build_trainer(sft, 0, str(work / "sft-work"))
    out = {"sft": _run("sft", trainer)}
    del trainer

    df = pd.read_parquet(SAMPLE).head(max(64, steps * batch))
    pairs = pd.DataFrame({"prompt": df.prompt, "chosen": df.response,
                          "rejected": df.response.sample(frac=1, random_state=0).to_numpy()})
    pairs = pairs[pairs.chosen != pairs.rejected].reset_index(drop=True)
    dpo = with_context(build(DPOStageConfig, {"sft_model": base, "train": train}, "dpo"), base)
    tok = load_tokenizer(base)
    trainer = dpo_trainer(dpo, load_causal_lm(base), load_causal_lm(base), tok, pairs, 0, str(work / "dpo-work"))
    out["dpo"] = _run("dpo", trainer)
    return out
