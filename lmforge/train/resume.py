"""Which checkpoint a pretraining run continues: the run fingerprint, setting aside another
run's checkpoints, and the resume itself (resharding through a universal checkpoint).

Apart from the loop (``lmforge.train.trainer``) because it is the one place that decides
whether saved state belongs to this run: same recipe, model, seed, data, precision actually
used and ZeRO stage. A checkpoint of another run is set aside (never deleted, never
continued); one whose layout does not match the engine is refused with both named.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from lmforge.stage import InputError
from lmforge.train import checkpoint as C
from lmforge.train import dist as D
from lmforge.train.config import PretrainConfig

log = logging.getLogger(__name__)


# settings that change how a run is watched or saved, not the weights it produces
RESUME_SAFE = {"tokens_dir", "tokenizer_dir", "out_dir", "eval_every", "eval_rows", "checkpoint_every",
               "keep_last", "resume", "peak_flops", "threads", "progress"}


def run_fingerprint(cfg: PretrainConfig, conf, seed: int, meta: dict, precision: str) -> str:
    """Hash of everything that determines the weights: recipe, model, seed and data.

    A persisted checkpoint is resumed only by a run with the same fingerprint, so
    `dvc repro` after a crash continues exactly, while `dvc repro` after a params or
    data change trains afresh instead of continuing someone else's run. ``precision``
    is the one actually used (``auto`` is bf16 on a GPU, fp32 on a CPU), and the ZeRO
    stage counts too: its checkpoint layout and optimizer wrapper differ, so an fp32
    CPU run met by a bf16 GPU run, or ``dvc exp run -S pretrain.zero_stage=...``, is
    another run (set aside, trained afresh, and brought back when the settings are).
    """
    model = {k: v for k, v in conf.to_dict().items() if k not in ("transformers_version", "_name_or_path")}
    recipe = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RESUME_SAFE}
    recipe["precision"] = precision
    data = {k: meta.get(k) for k in ("tokenizer_sha256", "vocab_size", "seq_len", "dtype", "splits")}
    blob = json.dumps({"recipe": recipe, "model": model, "seed": seed, "data": data}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _fingerprint_of(ckroot: Path) -> str | None:
    """The run fingerprint of the newest complete checkpoint under ``ckroot`` (None: there is none)."""
    newest = C.latest(ckroot)
    if newest is None:
        return None
    return json.loads((newest / "trainer_state.json").read_text()).get("fingerprint") or "unknown"


def _layout(state: dict) -> str:
    return (f"{state.get('precision', 'unknown precision')} on {state.get('device', 'an unknown device')}, "
            f"ZeRO stage {state.get('zero_stage')}")


def set_aside_stale(ckroot: Path, fingerprint: str, rank: int, layout: str = "") -> Path | None:
    """Move checkpoints of a different run beside the folder (never delete them), and bring
    back this run's own if an earlier switch set them aside there.

    Set-aside folders are named by fingerprint (``checkpoints-stale-<first 12>``), so
    alternating between two settings (``dvc exp run -S ...`` back and forth) moves each
    run's checkpoints out of the way and back: neither continues the other, and going back
    to earlier settings resumes their own run (at its end: nothing to retrain).
    """
    saved = _fingerprint_of(ckroot)
    newest = C.latest(ckroot)
    was = _layout(json.loads((newest / "trainer_state.json").read_text())) if newest else ""
    D.barrier()   # every rank has read the folder before rank 0 moves anything
    if saved == fingerprint:
        return None
    stale = ckroot.with_name(f"{ckroot.name}-stale-{(saved or '')[:12]}")
    mine = ckroot.with_name(f"{ckroot.name}-stale-{fingerprint[:12]}")
    if rank == 0:
        if saved is not None:
            if stale.exists():
                shutil.rmtree(stale)
            os.replace(ckroot, stale)
            log.warning("%s held a run with other params, data, precision or ZeRO stage (fingerprint %s: %s; "
                        "this run %s: %s); not resumed, moved it to %s",
                        ckroot, saved[:12], was, fingerprint[:12], layout, stale)
        if _fingerprint_of(mine) == fingerprint:
            shutil.rmtree(ckroot, ignore_errors=True)   # at most torn leftovers: no complete checkpoint
            os.replace(mine, ckroot)
            log.info("brought back this run's checkpoints from %s", mine)
        elif saved is not None:
            log.info("training afresh")
    D.barrier()
    return stale if saved is not None else None


def resume(run) -> None:
    """Continue from the newest complete checkpoint of this same run, if there is one."""
    cfg = run.cfg
    if cfg.resume == "auto":
        set_aside_stale(run.ckroot, run.state["fingerprint"], run.rank, _layout(run.state))
    resume_from = C.latest(run.ckroot)
    if cfg.resume == "never" and resume_from is not None:
        raise InputError(f"{run.ckroot}: holds checkpoints of an earlier run and pretrain.resume is 'never'; "
                         f"delete the folder or set resume: auto")
    if resume_from is None:
        return
    stage, world = C.saved_layout(resume_from)
    saved = json.loads((resume_from / "trainer_state.json").read_text())
    if stage != cfg.zero_stage or saved.get("precision") != run.state["precision"]:
        # DeepSpeed's bf16 and ZeRO wrappers expect optimizer state in their own layout: refuse, never crash
        raise InputError(f"{resume_from}: saved in {_layout(saved)}, this run trains in {_layout(run.state)}; "
                         f"resume with the same pretrain.precision and pretrain.zero_stage, or move the "
                         f"checkpoints away to train afresh")
    tag = "ds"
    if C.needs_universal(resume_from, cfg.zero_stage, run.world):
        tag = C.to_universal(resume_from, run.rank)
    run.state = C.load(run.engine, resume_from, run.rank, tag)
    run.state["world_size"] = run.world   # the data position is global: any layout continues it
    if run.rank == 0:
        moved = f", resharded from {world} to {run.world} process(es)" if world != run.world else ""
        log.info("resumed from %s (step %s, data position %s rows%s)", resume_from, run.state["step"],
                 run.state["samples"], moved)
