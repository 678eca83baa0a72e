"""Golden loss curve of the ``tiny`` model: a change that alters the numerics fails here.

Runs the real pretraining path (DeepSpeed ZeRO-0, fp32, CPU) on a seeded synthetic
Markov-chain token stream, so the curve depends only on the code and the maths,
not on which documentation happens to be installed. To accept an intended change
of numerics: ``LMFORGE_UPDATE_GOLDEN=1 pytest tests/train/test_golden.py``.
"""
import json
import os
from pathlib import Path

import pytest
from lmforge.testing.pretrain import golden_config, golden_run

GOLDEN = Path(__file__).with_name("golden_tiny_loss.json")


def test_tiny_loss_matches_golden(tmp_path):
    cfg, run = golden_config(tmp_path), golden_run(tmp_path)
    m, losses, evals = run["metrics"], run["train_loss"], run["val_loss"]
    now = {"config": {"model": "tiny", **{k: v for k, v in cfg.items() if "dir" not in k}},
           "train_loss": losses, "val_loss": evals}
    if os.environ.get("LMFORGE_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(now, indent=2) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert golden["config"] == now["config"]
    assert losses == pytest.approx(golden["train_loss"], rel=1e-3, abs=1e-3)
    assert evals == pytest.approx(golden["val_loss"], rel=1e-3, abs=1e-3)
    assert m["val_loss"] < m["init_val_loss"]            # and it does start to learn the chain
