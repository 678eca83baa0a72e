"""DeepSpeed overhead on CPU: one optimizer step through the engine vs a bare PyTorch loop.

Same model (the Llama decoder from lmforge.model, identical initial weights),
same batch, same AdamW recipe and gradient clipping; steps of the two are
interleaved so that load from other processes hits both alike, and the median
step time of each is compared. Prints ``ratio = bare_time / deepspeed_time``
(throughput of DeepSpeed relative to bare PyTorch; goal >= 0.9).

    python bench/bench_pretrain.py [--depth 4] [--batch 8] [--seq 256] [--steps 12] [--zero 0]
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

import _support  # noqa: F401 - first: this checkout's lmforge on sys.path (bench/_support.py)

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache/lmforge/torch_extensions"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--zero", type=int, default=0)
    a = ap.parse_args(argv)

    import deepspeed
    import torch

    from lmforge.model import ModelConfig, build_model
    from lmforge.train import deepspeed_config, make_optimizer
    from lmforge.train import dist as D
    from lmforge.train.trainer import lm_loss

    D.setup()
    torch.manual_seed(0)
    base = build_model(ModelConfig(depth=a.depth), a.vocab, a.seq)
    bare, ds_model = base, copy.deepcopy(base)
    opt = make_optimizer(bare, 1e-3, (0.9, 0.95), 1e-8, 0.1)
    engine, *_ = deepspeed.initialize(model=ds_model, optimizer=make_optimizer(ds_model, 1e-3, (0.9, 0.95), 1e-8, 0.1),
                                      config=deepspeed_config(a.zero, a.batch, 1, 1, 1.0, False))
    x = torch.randint(0, a.vocab, (a.batch, a.seq))
    y = torch.randint(0, a.vocab, (a.batch, a.seq))

    def bare_step():
        loss = lm_loss(bare(input_ids=x).logits, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(bare.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def ds_step():
        loss = lm_loss(engine(input_ids=x).logits, y)
        engine.backward(loss)
        engine.step()

    times = {"bare": [], "deepspeed": []}
    for i in range(a.steps + 2):
        for name, fn in (("bare", bare_step), ("deepspeed", ds_step)) if i % 2 else \
                (("deepspeed", ds_step), ("bare", bare_step)):
            t = time.perf_counter()
            fn()
            if i >= 2:  # first two rounds warm up allocators and caches
                times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    tok = a.batch * a.seq
    print(f"model depth {a.depth} ({sum(p.numel() for p in bare.parameters()) / 1e6:.1f}M params), "
          f"batch {a.batch}x{a.seq}, ZeRO-{a.zero}, {a.steps} interleaved steps, threads {torch.get_num_threads()}")
    for k, v in med.items():
        print(f"  {k:10s} median step {v * 1000:8.1f} ms  {tok / v:10,.0f} tokens/s")
    print(f"ratio (deepspeed throughput / bare pytorch) = {med['bare'] / med['deepspeed']:.3f}  (goal >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
