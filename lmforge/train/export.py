"""Export a checkpoint (any ZeRO stage) as a Hugging Face ``LlamaForCausalLM`` folder.

The weights come from the checkpoint on disk, not from the live engine, so the
same path serves the end of training and a user exporting an old checkpoint
(``python -m lmforge.train.export CKPT OUT``). ZeRO 1-3 (and bf16) checkpoints are
consolidated to fp32 with DeepSpeed's ``get_fp32_state_dict_from_zero_checkpoint``;
stage 0 keeps whole fp32 weights in its model-states file. The output folder is
written atomically: safetensors, config, generation config, tokenizer files.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

from lmforge.io import atomic_dir

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "chat_template.jinja", "added_tokens.json", "tokenizer.model")


def checkpoint_state_dict(ckpt: Path) -> dict:
    ds = Path(ckpt) / "ds"
    if any(ds.glob("*zero_pp_rank_*optim_states.pt")):
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        return get_fp32_state_dict_from_zero_checkpoint(str(ckpt), tag="ds")
    files = sorted(ds.glob("mp_rank_*_model_states.pt"))
    if not files:
        raise FileNotFoundError(f"{ds}: no DeepSpeed model states found")
    # our own checkpoint; DeepSpeed pickles its config objects beside the weights
    states = torch.load(files[0], map_location="cpu", weights_only=False)
    return {k: v.float() for k, v in states["module"].items()}


def export_checkpoint(ckpt: Path, out_dir: Path, tokenizer_dir: str | None) -> Path:
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    ckpt = Path(ckpt)
    conf = LlamaConfig.from_json_file(ckpt / "config.json")
    conf._attn_implementation = "sdpa"
    sd = checkpoint_state_dict(ckpt)
    model = LlamaForCausalLM(conf)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    allowed = {"lm_head.weight"} if conf.tie_word_embeddings else set()
    if set(missing) - allowed or unexpected:
        raise RuntimeError(f"{ckpt}: state dict does not fit the model: missing {missing}, "
                           f"unexpected {unexpected}")
    model.tie_weights()
    gen = GenerationConfig(bos_token_id=conf.bos_token_id, eos_token_id=conf.eos_token_id,
                           pad_token_id=conf.pad_token_id, max_new_tokens=128, do_sample=True,
                           temperature=0.8, top_p=0.95)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        gen.save_pretrained(tmp)
        if tokenizer_dir and Path(tokenizer_dir).is_dir():
            for p in Path(tokenizer_dir).iterdir():
                if p.is_file() and (p.name in TOKENIZER_FILES or p.name.startswith("tokenizer")):
                    shutil.copy2(p, tmp / p.name)
    return Path(out_dir)


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Export a pretraining checkpoint as an HF model folder")
    ap.add_argument("checkpoint", help="a complete checkpoint folder (step_XXXXXXXX)")
    ap.add_argument("out_dir")
    ap.add_argument("--tokenizer", default="models/tokenizer")
    a = ap.parse_args(argv)
    if not (Path(a.checkpoint) / "COMPLETE").exists():
        print(f"{a.checkpoint}: not a complete checkpoint", file=sys.stderr)
        return 2
    print(export_checkpoint(Path(a.checkpoint), Path(a.out_dir), a.tokenizer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
