"""GPU check: train the ``small`` model (~124M at GPT-2's vocabulary) in bf16 and print MFU.

One prepared script for one GPU (well under 8 minutes on an H100): synthetic
random-token shards in the ``data/tokens`` format are written to a temp folder
(vocab 50304, seq_len 1024), then the real pretraining path (DeepSpeed, ZeRO-1,
bf16, torch.compile) runs a few hundred steps; MFU uses the peak FLOP/s of the
detected device (lmforge.train.mfu). Goal: MFU >= 0.5.

Then SFT and DPO run on the same device through the stages' TRL trainers
(``gpu_check_align.py``), printing samples/s and peak memory; ``--no-align`` skips them.

``--cpu-smoke`` runs the same paths on CPU in a reduced size (1 layer, fp32, a few
steps) so the script itself stays tested.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_check_align
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache/lmforge/torch_extensions"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def random_tokens(root: Path, vocab: int, seq: int, rows: tuple[int, int]) -> Path:
    rng = np.random.default_rng(0)
    meta = {"seq_len": seq, "row_len": seq + 1, "dtype": "uint16" if vocab < 65536 else "uint32",
            "vocab_size": vocab, "tokenizer_sha256": "synthetic", "bos_id": 1, "eos_id": 2, "pad_id": 0,
            "splits": {}}
    for split, n in zip(("train", "val"), rows):
        (root / split).mkdir(parents=True, exist_ok=True)
        np.save(root / split / "shard_00000.npy", rng.integers(3, vocab, (n, seq + 1), dtype=np.uint32)
                .astype(meta["dtype"]))
        meta["splits"][split] = {"shards": [f"{split}/shard_00000.npy"], "rows": n, "tokens": n * (seq + 1)}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu-smoke", action="store_true")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--micro-batch", type=int, default=32)
    ap.add_argument("--global-batch-tokens", type=int, default=262144)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--no-align", action="store_true", help="skip the SFT and DPO checks")
    a = ap.parse_args(argv)

    import torch

    from lmforge.model import ModelConfig
    from lmforge.train.config import PretrainConfig
    from lmforge.train.trainer import Outputs, pretrain

    if not a.cpu_smoke and not torch.cuda.is_available():
        print("no GPU found; use --cpu-smoke for the reduced CPU mode", file=sys.stderr)
        return 2
    work = Path(a.workdir or tempfile.mkdtemp(prefix="lmforge-gpu-check-"))
    if a.cpu_smoke:
        vocab, seq, model = 512, 64, ModelConfig(size="small", depth=1)
        cfg = dict(max_steps=3, micro_batch_size=2, global_batch_tokens=256, precision="fp32",
                   eval_every=3, eval_rows=4, threads=1)
    else:
        vocab, seq, model = 50304, 1024, ModelConfig(size="small")
        cfg = dict(max_steps=a.steps, micro_batch_size=a.micro_batch, global_batch_tokens=a.global_batch_tokens,
                   precision="bf16", zero_stage=1, eval_every=a.steps, eval_rows=64, lr=6e-4,
                   compile=not a.no_compile)
    tokens = random_tokens(work / "tokens", vocab, seq, (4096 if not a.cpu_smoke else 32, 64 if not a.cpu_smoke else 8))
    pc = PretrainConfig(tokens_dir=str(tokens), tokenizer_dir=str(work / "no-tokenizer"),
                        out_dir=str(work / "pretrain"), checkpoint_every=10**9, resume="never",
                        progress=not a.cpu_smoke, **cfg)
    out = Outputs(*(str(work / f) for f in ("pretrain.json", "steps.csv", "eval.csv", "timing.json",
                                             "timing.csv", "live", "timing_live")))
    m = pretrain(pc, model, seed=0, out=out)
    import csv

    rows = list(csv.DictReader(open(work / "timing.csv")))
    steady = rows[len(rows) // 5:] or rows           # skip warm-up/compile steps
    mfu = sum(float(r["mfu"]) for r in steady) / len(steady)
    tps = sum(float(r["tokens_per_s"]) for r in steady) / len(steady)
    print(f"gpu_check: device {m['device']}, {m['params'] / 1e6:.1f}M params, {m['precision']}, "
          f"{m['steps']} steps, steady {tps:,.0f} tokens/s, MFU {mfu:.3f} (goal >= 0.5), "
          f"val_loss {m['val_loss']:.3f}")
    if not a.no_align:
        from gpu_check_align import align_check

        align_check(work, a.cpu_smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
