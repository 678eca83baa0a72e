"""DVCLive for the training stages: step metrics on disk while a run is still going.

Each training stage logs into its own DVCLive folder, so ``dvc plots show`` (or the
VS Code extension) draws curves during a run, not only after it:

- ``metrics/live/<stage>/`` holds the numerics (loss, lr, grad norm, held-out loss,
  TRL's reward accuracy/margins and DPO chosen/rejected rewards). It is a stage output
  (``cache: false``) and must be byte-identical across two runs of one commit, so
  nothing here writes timestamps, run-time figures or TrainingArguments (which
  carry temporary paths): ``Live`` runs with ``dvcyaml=None`` (dvc.yaml stays the
  one graph), ``save_dvc_exp=False`` (``dvc exp run`` does that) and no report.
- ``metrics/timing/live/<stage>/`` holds what measures the machine (tokens/s, MFU,
  Trainer run time and samples/s). It is under ``metrics/timing/``, outside every
  hashed output.

The exact record of a pretraining run stays the checkpointed history: a resumed run
opens its folders afresh (DVCLive clears them) and replays the checkpoint's rows
before logging new steps, so after a SIGKILL the live files neither repeat nor lose
a step. A resumed SFT or DPO run does the same with the Trainer's checkpointed
``log_history``.
"""
from __future__ import annotations

import os

LIVE_ROOT = "metrics/live"
TIMING_LIVE_ROOT = "metrics/timing/live"
# keys the HF Trainer logs that measure the machine, not the model
TIMING_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos")


def live_dir(stage: str) -> str:
    return f"{LIVE_ROOT}/{stage}"


def timing_live_dir(stage: str) -> str:
    return f"{TIMING_LIVE_ROOT}/{stage}"


class LiveLog:
    """One DVCLive folder, written row by row at explicit steps (never DVCLive's own counter)."""

    def __init__(self, path: str | os.PathLike):
        from dvclive import Live

        self.live = Live(dir=str(path), resume=False, report=None, save_dvc_exp=False, dvcyaml=None)

    def log(self, step: int, values: dict, prefix: str = "train") -> None:
        self.live.step = int(step)
        for key, val in values.items():
            self.live.log_metric(f"{prefix}/{key}" if prefix else key, val)

    def sync(self) -> None:
        """Rewrite the summary (``metrics.json``: latest value of each metric and the step).

        Keys are sorted (``step`` last): DVCLive keeps insertion order, which differs between
        a run that logged step by step and one that replayed a checkpoint's history."""
        self.live.summary = _canonical({k: v for k, v in self.live.summary.items() if k != "step"})
        self.live.make_summary()

    def end(self) -> None:
        self.live.end()


def _canonical(d: dict) -> dict:
    return {k: _canonical(v) if isinstance(v, dict) else v for k, v in sorted(d.items())}


def replay(log: LiveLog, rows: list[dict], keys: tuple[str, ...], prefix: str) -> None:
    """Write a stored history (rows with ``step`` and ``keys``) into a fresh folder."""
    for row in rows:
        log.log(row["step"], {k: row[k] for k in keys}, prefix)


def whole_run_loss(log_history: list[dict]) -> float | None:
    """Mean of a Trainer's logged losses over the whole run, checkpointed steps included.

    The Trainer's own ``train_loss`` covers only the steps of the last ``train()`` call, so
    after a resume it would describe the resumed part alone (None: nothing logged)."""
    losses = [h["loss"] for h in log_history if "loss" in h]
    return sum(losses) / len(losses) if losses else None


def trainer_callback(stage: str):
    """A DVCLive callback for TRL/HF trainers: numerics to ``metrics/live/<stage>``, timing apart.

    It subclasses transformers' ``DVCLiveCallback`` (what ``report_to="dvclive"``
    installs) and changes four things: rows are logged at the trainer's global step,
    the Trainer's arguments are not written (temporary paths would make the stage
    output differ run to run), the run-time keys go to the timing folder, and a run
    resumed from a checkpoint first replays the checkpoint's ``log_history``.
    """
    from transformers.integrations import DVCLiveCallback

    class _Callback(DVCLiveCallback):
        def setup(self, args, state, model):
            self._initialized = True
            if state.is_world_process_zero:
                self.log = LiveLog(live_dir(stage))
                self.live = self.log.live
                self.timing = LiveLog(timing_live_dir(stage))
                self.resumed = state.global_step > 0
                for row in state.log_history:   # a resumed run: the checkpoint's rows first
                    if row.get("step", 0) <= state.global_step:
                        self._write(row["step"], row)

        def on_log(self, args, state, control, model=None, logs=None, **kwargs):
            if not self._initialized:
                self.setup(args, state, model)
            if state.is_world_process_zero:
                if self.resumed and logs and "train_loss" in logs:   # the whole run's, as an uninterrupted run logs
                    logs = {**logs, "train_loss": whole_run_loss(state.log_history) or logs["train_loss"]}
                self._write(state.global_step, logs)

        def _write(self, step, logs):
            from dvclive.plots import Metric
            from dvclive.utils import standardize_metric_name

            ok = {standardize_metric_name(k, "dvclive.huggingface"): (k, v) for k, v in (logs or {}).items()
                  if Metric.could_log(v) and k not in ("epoch", "step")}
            timing = {n: v for n, (k, v) in ok.items() if k in TIMING_KEYS}
            numerics = {n: v for n, (k, v) in ok.items() if k not in TIMING_KEYS}
            if numerics:
                self.log.log(step, numerics, prefix="")
                self.log.sync()
            if timing:
                self.timing.log(step, timing, prefix="")
                self.timing.sync()

        def on_train_end(self, args, state, control, **kwargs):
            if self._initialized and state.is_world_process_zero:
                self.log.end()
                self.timing.end()

    return _Callback()
