"""What a pretraining run reports: progress bar, DVCLive, per-step/eval CSV plots, metrics JSON.

The metric history lives in the trainer state (and so in every checkpoint), so a
resumed run's plots continue exactly where the checkpoint left them instead of
duplicating or losing rows. CSVs are rewritten atomically at each checkpoint and
at the end, which is what ``dvc plots`` reads.

Timing (tokens/s, MFU, seconds, the device) is kept apart from the numerics (loss,
lr, grad norm): it goes to ``metrics/timing/`` files that dvc.yaml lists at top level,
outside every stage's hashed outputs, so two runs of one commit give the same
dvc.lock while the speed figures stay comparable with ``dvc metrics diff``.

Rank 0 also logs every step to DVCLive (``lmforge.live``): the numerics to
``metrics/live/pretrain``, tokens/s and MFU to ``metrics/timing/live/pretrain``. A
resumed run replays the checkpointed history into fresh folders first, so the live
files agree with the CSVs row for row.
"""
from __future__ import annotations

import logging
import math
import sys

from lmforge.io import write_csv, write_json
from lmforge.live import LiveLog, replay

log = logging.getLogger(__name__)


STEP_COLS = ("step", "loss", "lr", "grad_norm", "tokens")
TIMING_COLS = ("step", "tokens_per_s", "mfu")
EVAL_COLS = ("step", "val_loss", "val_ppl")
# metrics that measure the machine, not the model: written to the timing file only
TIMING_METRICS = ("tokens_per_s", "mfu", "device", "peak_flops_per_device", "train_seconds")


class StepLog:
    def __init__(self, cfg, rank: int, out, state: dict, total: int):
        self.rank, self.out, self.state = rank, out, state
        self.bar = None
        if rank == 0 and cfg.progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=state["step"], desc="pretrain", unit="step",
                            file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
        self.live = self.live_timing = None
        if rank == 0:
            self.live, self.live_timing = LiveLog(out.live_dir), LiveLog(out.timing_live_dir)
            replay(self.live, state["evals"], EVAL_COLS[1:], "eval")
            replay(self.live, state["history"], STEP_COLS[1:4], "train")  # last: the summary's step
            replay(self.live_timing, state["timing"], TIMING_COLS[1:], "train")
            self.live.sync()
            self.live_timing.sync()

    def step(self, step: int, loss: float, lr: float, grad_norm: float, tokens_per_s: float, mfu: float):
        self.state["history"].append({"step": step, "loss": round(loss, 6), "lr": lr,
                                      "grad_norm": round(grad_norm, 6), "tokens": self.state["tokens"]})
        self.state["timing"].append({"step": step, "tokens_per_s": round(tokens_per_s, 1),
                                     "mfu": round(mfu, 6)})
        if self.live is not None:
            self._live(self.live, self.state["history"][-1], STEP_COLS[1:4], "train")
            self._live(self.live_timing, self.state["timing"][-1], TIMING_COLS[1:], "train")
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tokens_per_s:,.0f}", refresh=False)
            self.bar.update(1)

    def eval(self, step: int, val_loss: float):
        ppl = math.exp(min(val_loss, 50.0))
        self.state["evals"].append({"step": step, "val_loss": round(val_loss, 6), "val_ppl": round(ppl, 4)})
        if self.live is not None:
            self._live(self.live, self.state["evals"][-1], EVAL_COLS[1:], "eval")
        if self.rank == 0:
            msg = f"step {step}: val_loss {val_loss:.4f} val_ppl {ppl:.2f}"
            (self.bar.write(msg) if self.bar is not None else log.info(msg))

    @staticmethod
    def _live(log: LiveLog, row: dict, keys: tuple[str, ...], prefix: str) -> None:
        replay(log, [row], keys, prefix)
        log.sync()

    def state_for_save(self) -> dict:
        return dict(self.state)

    def flush(self):
        if self.rank == 0:
            write_csv(self.out.steps_csv, [{k: r[k] for k in STEP_COLS} for r in self.state["history"]])
            write_csv(self.out.timing_csv, [{k: r[k] for k in TIMING_COLS} for r in self.state["timing"]])
            write_csv(self.out.eval_csv, [{k: r[k] for k in EVAL_COLS} for r in self.state["evals"]])

    def close(self):
        if self.bar is not None:
            self.bar.close()
        for log in (self.live, self.live_timing):
            if log is not None:
                log.end()

    def finish(self, metrics: dict):
        self.flush()
        write_json(self.out.metrics_json, {k: v for k, v in metrics.items() if k not in TIMING_METRICS})
        write_json(self.out.timing_json, {k: metrics[k] for k in TIMING_METRICS if k in metrics})
