"""GPU check: train the ``small`` model (~124M at GPT-2's vocabulary) in bf16 and print MFU.

One prepared script for one GPU (well under 8 minutes on an H100): synthetic
random-token shards in the ``data/tokens`` format are written to a temp folder
(vocab 50304, seq_len 1024), then the real pretraining path (DeepSpeed, ZeRO-1,
bf16, torch.compile) runs a few hundred steps; MFU uses the peak FLOP/s of the
detected device (lmforge.train.mfu). Goal: MFU >= 0.5.

Then SFT and DPO run at the same ``small`` shape on the same device through the stages'
TRL trainers (``gpu_check_align.py``), printing samples/s and peak memory; ``--no-align``
skips them.

Every defect of issue 20 that only a GPU shows is a ``CHECK ... ok|FAILED`` line, and the
script exits 1 if any failed: bf16 only where the GPU has it in hardware; the training loss
of bf16 logits (DeepSpeed's chunked cross-entropy, Triton on a GPU) equal to fp32 CE; the
exported weights' round trip (transformers loads ``hf/`` and gets the run's held-out loss);
the post-training models and the eval harness on the GPU. Printed: MFU, tokens/s and
samples/s, peak memory.

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

import _support  # noqa: F401 - first: this checkout's lmforge on sys.path (bench/_support.py)

os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache/lmforge/torch_extensions"))


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


class Checks:
    """``CHECK name: ok|FAILED (detail)`` lines; ``failed`` counts the failures."""

    def __init__(self):
        self.failed = 0

    def __call__(self, name: str, ok: bool, detail: str = "") -> bool:
        self.failed += not ok
        print(f"CHECK {name}: {'ok' if ok else 'FAILED'}" + (f" ({detail})" if detail else ""), flush=True)
        return ok


def loss_check(check, device) -> None:
    """bf16 logits: the chunked loss and its gradient equal fp32 cross-entropy (Triton on a GPU)."""
    import torch
    import torch.nn.functional as F

    from lmforge.model import token_cross_entropy

    torch.manual_seed(0)
    logits = (torch.randn(4096, 50304, device=device) * 3).to(torch.bfloat16)
    y = torch.randint(0, 50304, (4096,), device=device)
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ours, ref = token_cross_entropy(a, y), F.cross_entropy(b.float(), y)
    ours.backward()
    ref.backward()
    err = (a.grad.float() - b.grad.float()).abs().max().item()
    check("bf16 logits: chunked loss and gradient equal fp32 cross-entropy",
          abs(ours.item() - ref.item()) <= 1e-5 * abs(ref.item()) and err < 1e-5,
          f"loss {ours.item():.6f} vs {ref.item():.6f}, max grad diff {err:.1e}")


def round_trip(check, hf: Path, tokens: Path, rows: int, val_loss: float, device) -> None:
    """The export loads in transformers (fp32) and gives the run's held-out loss (bf16 in training)."""
    import torch
    from transformers import AutoModelForCausalLM

    from lmforge.train.data import IGNORE, PackedTokens
    from lmforge.train.trainer import lm_loss

    model = AutoModelForCausalLM.from_pretrained(hf, local_files_only=True).to(device).eval()
    val = PackedTokens(tokens, "val")
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, min(rows, val.rows), 8):
            x, y = val.rows_to_batch(range(i, min(i + 8, rows, val.rows)))
            x, y = x.to(device), y.to(device)
            total += float(lm_loss(model(input_ids=x, use_cache=False).logits, y, reduction="sum"))
            count += int((y != IGNORE).sum())
    loss = total / count
    check("exported weights round trip (transformers, fp32) give the run's val_loss",
          abs(loss - val_loss) <= 2e-2 * val_loss, f"{loss:.4f} vs {val_loss:.4f} in training")


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
    from lmforge.train.dist import native_bf16

    check = Checks()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="lmforge-gpu-check-"))
    if torch.cuda.is_available():
        emulated = torch.cuda.is_bf16_supported()
        check("bf16 counted only in hardware (including_emulation=False)",
              native_bf16() == torch.cuda.is_bf16_supported(including_emulation=False),
              f"{torch.cuda.get_device_name()}: native {native_bf16()}, with emulation {emulated}")
    if a.cpu_smoke:
        vocab, seq, model = 512, 64, ModelConfig(size="small", depth=1)
        cfg = dict(max_steps=3, micro_batch_size=2, global_batch_tokens=256, precision="fp32",
                   eval_every=3, eval_rows=4, threads=1)
    else:
        vocab, seq, model = 50304, 1024, ModelConfig(size="small")
        cfg = dict(max_steps=a.steps, micro_batch_size=a.micro_batch, global_batch_tokens=a.global_batch_tokens,
                   precision="auto", zero_stage=1, eval_every=a.steps, eval_rows=64, lr=6e-4,
                   compile=not a.no_compile)
    tokens = random_tokens(work / "tokens", vocab, seq, (4096 if not a.cpu_smoke else 32, 64 if not a.cpu_smoke else 8))
    pc = PretrainConfig(tokens_dir=str(tokens), tokenizer_dir=str(work / "no-tokenizer"),
                        out_dir=str(work / "pretrain"), checkpoint_every=10**9, resume="never",
                        progress=not a.cpu_smoke, **cfg)
    out = Outputs(*(str(work / f) for f in ("pretrain.json", "steps.csv", "eval.csv", "timing.json",
                                             "timing.csv", "live", "timing_live")))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    m = pretrain(pc, model, seed=0, out=out)
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    import csv

    rows = list(csv.DictReader(open(work / "timing.csv")))
    steady = rows[len(rows) // 5:] or rows           # skip warm-up/compile steps
    mfu = sum(float(r["mfu"]) for r in steady) / len(steady)
    tps = sum(float(r["tokens_per_s"]) for r in steady) / len(steady)
    print(f"gpu_check: device {m['device']}, {m['params'] / 1e6:.1f}M params, {m['precision']}, "
          f"{m['steps']} steps, steady {tps:,.0f} tokens/s ({tps / seq:,.1f} samples/s), MFU {mfu:.3f} "
          f"(goal >= 0.5), peak memory {peak:.2f} GiB, val_loss {m['val_loss']:.3f}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check("pretraining precision is bf16 exactly where the GPU has it", (m["precision"] == "bf16") ==
          (not a.cpu_smoke and native_bf16()), m["precision"])
    round_trip(check, work / "pretrain/hf", tokens, pc.eval_rows, m["val_loss"], device)
    if torch.cuda.is_available():
        loss_check(check, device)
    if not a.no_align:
        from gpu_check_align import align_check

        align_check(work, a.cpu_smoke, check)
    print(f"gpu_check: {check.failed} check(s) failed")
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
