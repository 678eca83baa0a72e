"""ZeRO-2 across two gloo processes (torchrun) matches one process with accumulation."""
import json
import sys

import pytest
from support.pretrain import TINY_MODEL, run_inprocess, run_stage, tiny_pretrain


def test_zero2_two_processes_equals_one_process(token_data, tmp_path):
    common = dict(max_steps=3, global_batch_tokens=512, eval_every=3, checkpoint_every=3)
    two = tmp_path / "two"
    cfg = tiny_pretrain(*token_data, two / "models/pretrain", zero_stage=2, **common)
    p = run_stage(two, TINY_MODEL, cfg, launcher=[sys.executable, "-m", "torch.distributed.run",
                                                  "--standalone", "--nproc_per_node", "2"])
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-4000:])
    m2 = json.loads((two / "metrics/pretrain.json").read_text())
    assert m2["world_size"] == 2 and m2["grad_accum_steps"] == 1 and m2["zero_stage"] == 2
    assert (two / "models/pretrain/hf/model.safetensors").exists()

    # one process, two micro-batches per step: the same 8 rows per optimizer step
    one = tmp_path / "one"
    m1 = run_inprocess(one, TINY_MODEL, tiny_pretrain(*token_data, one / "models/pretrain", **common))
    assert m1["grad_accum_steps"] == 2 and m1["global_batch_tokens"] == m2["global_batch_tokens"]
    assert m2["init_val_loss"] == pytest.approx(m1["init_val_loss"], rel=1e-6)
    assert m2["train_loss"] == pytest.approx(m1["train_loss"], rel=1e-4)
    assert m2["val_loss"] == pytest.approx(m1["val_loss"], rel=1e-4)
