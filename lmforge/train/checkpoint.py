"""Checkpoints: atomic saves, retention, resume from the newest complete one.

Layout of ``models/pretrain/checkpoints/step_00000016/``:
``ds/`` (DeepSpeed's model/optimizer/scheduler files), ``config.json`` (the
LlamaConfig, so export needs nothing else), ``trainer_state.json`` (step, data
position, metric history), ``timing.json`` (seconds and tokens/s so far: the one
file that differs between two runs of one commit, so ``.dvcignore`` keeps it out of
the checkpoint's hash), ``rng_rank{r}.pt`` (RNG states, tensors and ints only, so
they load with ``weights_only=True``) and ``COMPLETE``. A ZeRO 1-3 checkpoint
resumed on another number of processes is first converted, once, by DeepSpeed's
``ds_to_universal`` into ``universal/`` beside ``ds/`` and loaded from there with
``checkpoint.load_universal`` (DeepSpeed reshards it); ZeRO-0 keeps whole weights
and optimizer state in ``ds/`` and loads on any number of processes as it is.

Atomicity: everything is written into ``.step_00000016.tmp/``, that folder is
renamed to its final name, and only then is the ``COMPLETE`` marker written.
A crash at any moment leaves either a ``.tmp`` folder or a folder without the
marker - neither is ever taken for a checkpoint, and both are swept on the next
save. Retention keeps the last ``keep_last`` complete checkpoints plus every one
whose step is a power of two (exponentially spaced history for free).
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from lmforge.io import fsync_dir, write_json, write_text
from lmforge.train import dist as D

MARKER = "COMPLETE"
UNIVERSAL = "universal"
TIMING = "timing.json"
TIMING_KEYS = ("train_seconds", "timing")  # trainer-state keys that measure the machine
_NAME = re.compile(r"^step_(\d{8})$")


def name(step: int) -> str:
    return f"step_{step:08d}"


def complete(root: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root``, oldest first."""
    root = Path(root)
    out = []
    if root.is_dir():
        for p in root.iterdir():
            m = _NAME.match(p.name)
            if m and p.is_dir() and (p / MARKER).exists():
                out.append((int(m.group(1)), p))
    return sorted(out)


def latest(root: str | Path) -> Path | None:
    ck = complete(root)
    return ck[-1][1] if ck else None


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def to_keep(steps: list[int], keep_last: int) -> set[int]:
    steps = sorted(steps)
    return set(steps[-keep_last:]) | {s for s in steps if is_power_of_two(s)}


def prune(root: str | Path, keep_last: int) -> list[Path]:
    """Delete complete checkpoints outside the policy and any torn leftovers."""
    root = Path(root)
    ck = complete(root)
    keep = to_keep([s for s, _ in ck], keep_last)
    removed = [p for s, p in ck if s not in keep]
    done = {p for _, p in ck}
    if root.is_dir():
        for p in root.iterdir():
            torn = (p.name.startswith(".step_") and p.name.endswith(".tmp")) or (
                _NAME.match(p.name) and p not in done)
            if torn and p.is_dir():
                removed.append(p)
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    return removed


def rng_state() -> dict:
    np_state = np.random.get_state()
    py = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": [py[0], list(py[1]), py[2]],
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    n = s["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    random.setstate((s["python"][0], tuple(s["python"][1]), s["python"][2]))
    if s["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def _fault(kind: str, step: int) -> None:
    """Fault injection for the crash tests: ``LMFORGE_FAULT=kind:step`` SIGKILLs this process."""
    if os.environ.get("LMFORGE_FAULT") == f"{kind}:{step}":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def save(engine, root: str | Path, step: int, state: dict, model_config, rank: int) -> Path:
    """Collective: every rank calls it. Returns the final checkpoint folder."""
    root = Path(root)
    final, tmp = root / name(step), root / f".{name(step)}.tmp"
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        for p in (tmp, final):
            if p.exists():
                shutil.rmtree(p)
        tmp.mkdir()
    D.barrier()
    engine.save_checkpoint(str(tmp), tag="ds", save_latest=False)
    torch.save(rng_state(), tmp / f"rng_rank{rank}.pt")
    if rank == 0:
        write_json(tmp / "trainer_state.json", {k: v for k, v in state.items() if k not in TIMING_KEYS})
        write_json(tmp / TIMING, {k: state[k] for k in TIMING_KEYS if k in state})
        model_config.to_json_file(tmp / "config.json")
    D.barrier()
    _fault("kill_in_save", step)
    if rank == 0:
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        os.replace(tmp, final)
        fsync_dir(root)
        write_text(final / MARKER, f"{step}\n")
    D.barrier()
    return final


def saved_layout(path: Path | None) -> tuple[int | None, int | None]:
    """(ZeRO stage, number of processes) a checkpoint was saved with."""
    if path is None:
        return None, None
    saved = json.loads((Path(path) / "trainer_state.json").read_text())
    return saved.get("zero_stage"), saved.get("world_size")


def needs_universal(path: Path | None, zero_stage: int, world: int) -> bool:
    """Whether resuming ``path`` here needs DeepSpeed's universal (resharding) load."""
    stage, saved_world = saved_layout(path)
    return zero_stage >= 1 and stage == zero_stage and saved_world not in (None, world)


def to_universal(path: Path, rank: int) -> str:
    """Collective: rank 0 converts ``path/ds`` with ``ds_to_universal`` (once); returns the tag."""
    path = Path(path)
    if rank == 0 and not (path / UNIVERSAL).is_dir():
        tmp = path / f".{UNIVERSAL}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        p = subprocess.run([sys.executable, "-m", "deepspeed.checkpoint.ds_to_universal",
                            "--input_folder", str(path / "ds"), "--output_folder", str(tmp),
                            "--inject_missing_state", "--num_extract_workers", "1", "--num_merge_workers", "1"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"{path}: ds_to_universal failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
        os.replace(tmp, path / UNIVERSAL)
    D.barrier()
    return UNIVERSAL


def own_step_counters(optimizer) -> int:
    """Give every optimizer state its own ``step`` tensor; return how many were shared.

    DeepSpeed 0.19.8's ZeRO-3 universal load (``load_hp_checkpoint_state_from_checkpoint_dir_stage3``)
    puts one and the same ``step`` tensor into every sub-group's state. ZeRO-3 steps the
    sub-groups one after another and torch's AdamW increments ``step`` in place, so with two
    parameter groups the shared counter advances twice per step and every bias correction
    after the load is wrong (docs/LOG.md, "dist", has the reproduction).
    """
    import torch

    inner = getattr(optimizer, "optimizer", optimizer)
    seen, shared = set(), 0
    for st in getattr(inner, "state", {}).values():
        step = st.get("step") if isinstance(st, dict) else None
        if torch.is_tensor(step):
            if id(step) in seen:
                st["step"] = step.clone()
                shared += 1
            seen.add(id(step))
    return shared


def load(engine, path: Path, rank: int, tag: str = "ds") -> dict:
    """Restore engine (model, optimizer, scheduler), RNG states; return trainer state."""
    path = Path(path)
    if not (path / MARKER).exists():
        raise FileNotFoundError(f"{path}: not a complete checkpoint (no {MARKER} marker)")
    decay = [g.get("weight_decay") for g in engine.optimizer.param_groups]   # the recipe's, per group
    loaded, _ = engine.load_checkpoint(str(path), tag=tag, load_optimizer_states=True,
                                       load_lr_scheduler_states=True)
    if loaded is None:
        raise RuntimeError(f"{path}: DeepSpeed could not load the checkpoint in {tag}/")
    if tag == UNIVERSAL:   # DeepSpeed 0.19's ZeRO-3 universal load gives every group group 0's settings
        for group, wd in zip(engine.optimizer.param_groups, decay):
            group["weight_decay"] = wd
        own_step_counters(engine.optimizer)
    rng = path / f"rng_rank{rank}.pt"
    if rng.exists():
        set_rng_state(torch.load(rng, weights_only=True))
    state = json.loads((path / "trainer_state.json").read_text())
    # timing.json is not in DVC's cache (see .dvcignore): a checkout restores no timing
    timing = json.loads((path / TIMING).read_text()) if (path / TIMING).exists() else {}
    state.update({"train_seconds": 0.0, "timing": []} | timing)
    return state
