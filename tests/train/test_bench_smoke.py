"""The GPU check script runs in its reduced CPU mode (so it cannot rot unnoticed)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


def test_gpu_check_cpu_smoke(tmp_path, capsys):
    import gpu_check

    assert gpu_check.main(["--cpu-smoke", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "gpu_check: device cpu" in out and "MFU" in out and "fp32" in out
    for stage in ("sft", "dpo"):  # post-training ran through the stages' trainers, on CPU, without bf16
        line = next(l for l in out.splitlines() if l.startswith(f"gpu_check {stage}:"))
        assert "samples/s" in line and "peak" in line and "bf16 False" in line and "device cpu" in line
    assert (tmp_path / "pretrain/hf/model.safetensors").exists()
    checks = [l for l in out.splitlines() if l.startswith("CHECK ")]
    assert any("round trip" in l for l in checks) and any("trainer's device" in l for l in checks)
    assert all(l.rsplit(": ", 1)[1].startswith("ok") or ": ok (" in l for l in checks), checks
    assert "gpu_check: 0 check(s) failed" in out
