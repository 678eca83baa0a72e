"""Resumable SFT and DPO: transformers' own checkpoints in the stage's own folder, resumed after a kill.

Pretraining owns its checkpoint format (``lmforge.train.checkpoint``); the TRL stages use
the Trainer's (``save_strategy="steps"``, ``checkpoint-<step>/`` folders written by
``save_steps``, ``save_total_limit``, ``trainer.train(resume_from_checkpoint=...)``).
What this module adds is what pretraining's resume does as well:

- The folder is ``<stage>.checkpoints.dir`` (``models/sft_checkpoints``,
  ``models/dpo_checkpoints``), a ``persist: true`` DVC out as pretraining's
  checkpoints are, and never inside the exported model folder, which stays a plain
  Hugging Face folder (release copies ``models/dpo`` as it is).
- A checkpoint counts only when complete. The Trainer writes ``trainer_state.json``
  last, so a folder without it (killed mid-save) is removed, never resumed.
- The checkpoint of a run's last step is not resumed: the run is replayed from the one
  before it, so rerunning a finished stage gives its model again (`_finishes_run`).
- A run fingerprint (the stage's params that change the weights, the seed, the TRL
  passthrough and the input files' hashes) sits in ``RUN.json``. Checkpoints of
  another run are set aside beside the folder (``<dir>-stale-<fingerprint>``), never
  continued and never deleted; going back to those settings brings them back.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path

from lmforge.config import require
from lmforge.io import file_sha256, write_json

log = logging.getLogger(__name__)

RUN_FILE = "RUN.json"
STATE_FILE = "trainer_state.json"   # transformers' TRAINER_STATE_NAME, the last file of a checkpoint
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")   # transformers' PREFIX_CHECKPOINT_DIR-<step>


@dataclasses.dataclass
class CheckpointConfig:
    """Where and how often a TRL stage checkpoints; ``every: 0`` (or no ``dir``) = never, and a
    killed run starts over. dvc.yaml names ``dir`` as the stage's ``persist: true`` out."""

    dir: str | None = None
    every: int = 10       # Trainer save_steps (the last step is saved too); 0 = no checkpoints
    keep_last: int = 2    # Trainer save_total_limit

    def __post_init__(self):
        require(self.every >= 0, f"checkpoints.every must be >= 0, got {self.every}")
        require(self.keep_last > 0, f"checkpoints.keep_last must be > 0, got {self.keep_last}")

    @property
    def on(self) -> bool:
        return self.dir is not None and self.every > 0

    def trainer_kwargs(self) -> dict:
        """The TrainingArguments fields for this (``output_dir`` is the folder itself)."""
        if not self.on:
            return {"save_strategy": "no"}
        return {"output_dir": self.dir, "save_strategy": "steps", "save_steps": self.every,
                "save_total_limit": self.keep_last, "save_only_model": False}


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []


def fingerprint(params: dict, seed: int, inputs: list[str | os.PathLike]) -> str:
    """sha256 of what determines the trained weights: ``params`` (the caller leaves out what only
    watches or saves), the seed, and every input file's bytes (a missing input counts as missing)."""
    data = {}
    for root in inputs:
        files = _files(Path(root))
        data[str(root)] = {str(f.relative_to(root)) if f != Path(root) else "": file_sha256(f) for f in files} or None
    blob = json.dumps({"params": params, "seed": seed, "inputs": data}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def complete(root: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root`` (``trainer_state.json`` written and readable), oldest first."""
    out = []
    root = Path(root)
    for p in (root.iterdir() if root.is_dir() else []):
        m = _CHECKPOINT.match(p.name)
        if not (m and p.is_dir() and (p / STATE_FILE).is_file()):
            continue
        try:
            json.loads((p / STATE_FILE).read_text())
        except ValueError:
            continue
        out.append((int(m.group(1)), p))
    return sorted(out)


def _saved_fingerprint(root: Path) -> str | None:
    try:
        return json.loads((root / RUN_FILE).read_text())["fingerprint"]
    except (OSError, ValueError, KeyError):
        return None


def prepare(ck: CheckpointConfig, fp: str, stage: str, rank: int = 0) -> str | None:
    """Make ``ck.dir`` this run's folder and return the checkpoint to resume from (None: start afresh).

    Call it once the Trainer's arguments exist (they set up the process group), on every rank:
    rank 0 moves and removes, the others wait for it and then read the same folder."""
    from lmforge.train import dist as D

    if not ck.on:
        return None
    root = Path(ck.dir)
    D.barrier()
    if rank == 0:
        _make_own(root, fp, stage)
    D.barrier()
    done = complete(root)
    ends = [_finishes_run(p) for _, p in done]
    finished = [p for (_, p), end in zip(done, ends) if end]
    done = [c for c, end in zip(done, ends) if not end]
    if finished and rank == 0:
        log.info(f"[{stage}] {finished[-1]} ends the run; replaying its last steps from "
                 f"{done[-1][1] if done else 'the start'} instead (the Trainer would train a step past it)")
    if not done:
        return None
    if rank == 0:
        log.info(f"[{stage}] resuming from {done[-1][1]} (step {done[-1][0]})")
    return str(done[-1][1])


def _finishes_run(checkpoint: Path) -> bool:
    """A checkpoint saved at the run's last step (its ``global_step`` at ``max_steps``). transformers
    5's loop takes a step before it checks ``max_steps``, so resuming from it trains a step past the
    end and a rerun of a finished stage would change its model: such a checkpoint is not resumed;
    the one before it is (resumes are bit-exact, test_align_resume.py), or the run starts afresh."""
    state = json.loads((checkpoint / STATE_FILE).read_text())
    return 0 < int(state.get("max_steps") or 0) <= int(state.get("global_step") or 0)


def _make_own(root: Path, fp: str, stage: str) -> None:
    saved = _saved_fingerprint(root)
    if root.exists() and saved != fp and any(root.iterdir()):
        stale = root.with_name(f"{root.name}-stale-{(saved or 'unknown')[:12]}")
        if stale.exists():
            shutil.rmtree(stale)
        os.replace(root, stale)
        log.warning(f"[{stage}] {root} held checkpoints of a run with other params or data "
                    f"(fingerprint {(saved or 'unknown')[:12]}, this run {fp[:12]}); not resumed, moved to {stale}")
    mine = root.with_name(f"{root.name}-stale-{fp[:12]}")
    if not root.exists() and _saved_fingerprint(mine) == fp:
        os.replace(mine, root)
        log.info(f"[{stage}] brought back this run's checkpoints from {mine}")
    root.mkdir(parents=True, exist_ok=True)
    steps = {s for s, _ in complete(root)}
    for p in root.iterdir():   # torn saves (killed mid-save): never resumed, removed
        m = _CHECKPOINT.match(p.name)
        if m and int(m.group(1)) not in steps:
            shutil.rmtree(p)
            log.info(f"[{stage}] removed the incomplete checkpoint {p}")
    if saved != fp:
        write_json(root / RUN_FILE, {"fingerprint": fp})


def run_params(p, drop: tuple[str, ...]) -> dict:
    """A stage section as a dict, less the keys in ``drop`` (paths of outputs, gates, checkpointing)."""
    return {k: v for k, v in dataclasses.asdict(p).items() if k not in drop}


def train(trainer, ck: CheckpointConfig, fp: str, stage: str) -> tuple[float, int]:
    """``trainer.train()``, resumed from this run's newest complete checkpoint when there is one.

    Returns (mean training loss, global step). The Trainer's own ``training_loss`` covers
    only the steps of this call; after a resume the mean comes from the checkpointed and
    new logged losses (``log_history``), so it is over the whole run either way."""
    from lmforge.live import whole_run_loss

    # TRL's checkpoint save also drafts a Hub model card (README.md) in the folder, its tags in a
    # Python set's order, which differs process to process: the persisted folder (a DVC out) would
    # hash differently on every run of one commit. The release writes lmforge's own card.
    trainer.create_model_card = lambda *args, **kwargs: None
    start = prepare(ck, fp, stage, trainer.args.process_index)
    if start is not None:
        _restore_token_count(trainer, Path(start))
    result = trainer.train(resume_from_checkpoint=start)
    if start is None:
        return float(result.training_loss), int(result.global_step)
    return whole_run_loss(trainer.state.log_history) or float(result.training_loss), int(result.global_step)


def _restore_token_count(trainer, checkpoint: Path) -> None:
    """TRL 1.16's trainers count ``num_tokens`` in memory (``_total_train_tokens``), which no
    checkpoint holds: a resumed run would log the tokens since the resume only. The count at the
    checkpoint is its last logged ``num_tokens``; start from it."""
    if not hasattr(trainer, "_total_train_tokens"):
        return
    history = json.loads((checkpoint / STATE_FILE).read_text()).get("log_history", [])
    counts = [h["num_tokens"] for h in history if "num_tokens" in h]
    if counts:
        trainer._total_train_tokens = int(counts[-1])
