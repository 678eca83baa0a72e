"""ZeRO-3 on two gloo processes: built under zero.Init, no rank holds the whole model.

The two processes come from ``resources.pretrain.gpu: 2`` in params.yaml: the stage, started
as one plain process as dvc repro and Snakemake start it, relaunches itself under torchrun
(lmforge.train.launch; on this CPU machine as two gloo processes).

Each rank reports the parameter elements it holds (its partitions, ``ds_tensor``);
each must be about half the model (at most half plus its largest tensor), the
initial weights must be those of a ZeRO-0 run of the same seed, and the export,
gathered from the partitioned checkpoint, must load in transformers and give the
run's held-out loss.
"""
import json
import re
import pytest
from lmforge.testing.pretrain import TINY_MODEL, run_stage, tiny_pretrain, val_loss_of



def test_zero3_partitions_the_model_across_two_processes(token_data, reference_run, tmp_path):
    cfg = tiny_pretrain(*token_data, tmp_path / "models/pretrain", zero_stage=3, max_steps=3,
                        global_batch_tokens=512, eval_every=3, checkpoint_every=3)
    p = run_stage(tmp_path, TINY_MODEL, cfg, params={"resources": {"pretrain": {"gpu": 2}}})
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-4000:])
    assert "resources.pretrain.gpu = 2: running as 2 CPU processes" in p.stdout
    held = dict(re.findall(r"rank (\d): ([\d,]+) parameter elements held", p.stdout))
    assert sorted(held) == ["0", "1"], p.stdout[-2000:]

    m = json.loads((tmp_path / "metrics/pretrain.json").read_text())
    assert m["world_size"] == 2 and m["zero_stage"] == 3 and m["steps"] == 3
    assert m["init_val_loss"] == pytest.approx(reference_run[2]["init_val_loss"], rel=1e-6)
    assert m["val_loss"] < m["init_val_loss"]

    loss, model = val_loss_of(tmp_path / "models/pretrain/hf", token_data[0], 8, 4)
    assert loss == pytest.approx(m["val_loss"], abs=1e-5)
    sizes = [t.numel() for t in model.parameters()]     # tied weights counted once
    total, largest = sum(sizes), max(sizes)
    for rank, n in held.items():
        n = int(n.replace(",", ""))
        assert total / 2 <= n <= total / 2 + largest, (rank, n, total, largest)
    print(f"ZeRO-3 x2: model {total:,} elements, per rank {held}")
