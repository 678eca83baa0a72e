"""Model FLOPs utilisation: achieved training FLOP/s over the device's peak.

The peak is looked up by device name (dense bf16 tensor-core figures from the
vendors' datasheets), not hard-coded to one GPU; on CPU it is estimated from the
core count, clock and vector width in /proc/cpuinfo (fp32 FMA throughput). An
explicit ``pretrain.peak_flops`` overrides both.
"""
from __future__ import annotations

import os
import re

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


def cpu_peak(threads: int | None = None) -> float:
    """fp32 peak of the cores this process uses: cores x GHz x FLOPs/cycle."""
    ghz, flags = 2.0, ""
    try:
        info = open("/proc/cpuinfo").read()
        m = re.search(r"cpu MHz\s*:\s*([\d.]+)", info)
        ghz = float(m.group(1)) / 1000 if m else ghz
        m = re.search(r"^flags\s*:(.*)$", info, re.M)
        flags = m.group(1) if m else ""
    except OSError:
        pass
    per_cycle = 64 if " avx512f" in flags else 32 if " fma" in flags else 8  # 2 FMA ports x lanes x 2
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    return threads * ghz * 1e9 * per_cycle


def device_peak(device, override: float | None = None) -> tuple[float, str]:
    """(peak FLOP/s, device name) for one rank."""
    if override:
        return float(override), "params.pretrain.peak_flops"
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = gpu_peak(name)
        return (peak or 0.0), name
    return cpu_peak(), f"cpu x{torch.get_num_threads()} ({os.cpu_count()} cores)"
