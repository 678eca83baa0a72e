"""A persisted checkpoint folder is resumed only by the run that wrote it.

Under `dvc repro` the checkpoint folder survives reruns (`persist: true`). After a
crash that must resume; after a params change it must not continue the old run, and
going back to the earlier params must continue (here: reuse) the earlier run, not
retrain it nor pick up the other one.
"""
import json
import shutil

from lmforge.testing.pretrain import TINY_MODEL, run_inprocess, tiny_pretrain

from lmforge.train import checkpoint as C


def test_changed_params_train_afresh_and_going_back_reuses_the_old_run(reference_run, token_data, tmp_path,
                                                                       capsys):
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

    capsys.readouterr()
    back = run_inprocess(work, TINY_MODEL, cfg)           # the first params again
    out = capsys.readouterr().out
    assert "brought back this run's checkpoints" in out and "resumed from" in out and "step 6" in out
    assert back["val_loss"] == ref_metrics["val_loss"] and back["steps"] == 6
    stale = list((work / "models/pretrain").glob("checkpoints-stale-*"))
    assert len(stale) == 1 and C.latest(stale[0]).name == C.name(6)   # now the lr=1e-3 run is aside
    fingerprints = [json.loads((C.latest(d) / "trainer_state.json").read_text())["fingerprint"]
                    for d in (ckroot, stale[0])]
    assert fingerprints[0] != fingerprints[1] and stale[0].name.endswith(fingerprints[1][:12])
