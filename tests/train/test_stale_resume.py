"""A persisted checkpoint folder is resumed only by the run that wrote it.

Under `dvc repro` the checkpoint folder survives reruns (`persist: true`). After a
crash that must resume; after a params change it must not continue the old run.
"""
import shutil

from support.pretrain import TINY_MODEL, run_inprocess, tiny_pretrain

from lmforge.train import checkpoint as C


def test_changed_params_train_afresh_and_keep_old_checkpoints(reference_run, token_data, tmp_path):
    ref_work, ref_cfg, ref_metrics = reference_run
    work = tmp_path / "run"
    shutil.copytree(ref_work / "models", work / "models")
    ckroot = work / "models/pretrain/checkpoints"
    cfg = tiny_pretrain(*token_data, work / "models/pretrain")

    same = run_inprocess(work, TINY_MODEL, cfg)          # same run: resumes at the end
    assert same["val_loss"] == ref_metrics["val_loss"]
    assert not list((work / "models/pretrain").glob("checkpoints-stale-*"))

    other = run_inprocess(work, TINY_MODEL, dict(cfg, lr=1e-3))
    stale = list((work / "models/pretrain").glob("checkpoints-stale-*"))
    assert len(stale) == 1 and C.latest(stale[0]).name == C.name(6)   # old run kept, not deleted
    assert other["steps"] == 6 and other["val_loss"] != ref_metrics["val_loss"]
    assert other["init_val_loss"] == ref_metrics["init_val_loss"]      # started from initialization
    assert C.latest(ckroot).name == C.name(6)
