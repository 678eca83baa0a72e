"""Model FLOPs utilisation: achieved training FLOP/s over the device's peak.

The peak is looked up by device name (dense bf16 tensor-core figures from the
vendors' datasheets), not hard-coded to one GPU. A CPU has no such table: the nominal
clock times an assumed FLOPs per cycle ignores turbo, shared cores and what the BLAS
really reaches, so the peak is measured once at start-up instead, as the best of a few
timed fp32 matmuls on the threads this process uses, and the device name says that
the MFU it gives is an estimate. An explicit ``pretrain.peak_flops`` overrides both.
"""
from __future__ import annotations

import functools
import os
import time

# dense bf16 (fp16 for V100/T4) peak FLOP/s per device, matched on lowercase name
GPU_PEAK = [
    ("h200", 989e12), ("gh200", 989e12), ("h100 pcie", 756e12), ("h100 nvl", 835e12),
    ("h100", 989e12), ("h800", 989e12), ("b200", 2250e12), ("b100", 1750e12),
    ("a100", 312e12), ("a800", 312e12), ("a6000", 155e12), ("a40", 150e12),
    ("a10g", 125e12), ("a10", 125e12), ("l40s", 362e12), ("l40", 181e12), ("l4", 121e12),
    ("rtx 4090", 165e12), ("rtx 3090", 71e12), ("v100", 125e12), ("t4", 65e12),
    ("mi300x", 1307e12), ("mi250x", 383e12),
]


def gpu_peak(name: str) -> float | None:
    low = name.lower()
    for key, peak in GPU_PEAK:
        if key in low:
            return peak
    return None


@functools.lru_cache(maxsize=8)
def timed_matmul_peak(threads: int, n: int = 512, repeats: int = 5) -> float:
    """fp32 FLOP/s of the best of ``repeats`` timed n x n matmuls on ``threads`` torch threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
        for _ in range(2):
            a @ b   # warm-up: BLAS threads, caches
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(4):
                a @ b
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return 4 * 2 * n ** 3 / best


def cpu_peak(threads: int | None = None) -> float:
    """fp32 peak of the threads this process uses, measured by ``timed_matmul_peak``."""
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    return timed_matmul_peak(threads)


def device_peak(device, override: float | None = None) -> tuple[float, str]:
    """(peak FLOP/s, device name) for one rank."""
    if override:
        return float(override), "params.pretrain.peak_flops"
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = gpu_peak(name)
        return (peak or 0.0), name
    return cpu_peak(), (f"cpu x{torch.get_num_threads()} ({os.cpu_count()} cores; peak from a timed matmul, "
                        "MFU an estimate)")
