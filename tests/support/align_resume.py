"""One SFT or DPO run with checkpoints, in its own process, that a test can SIGKILL on cue.

``python align_resume.py STAGE WORK BASE INSTR [FAULT]`` trains ``STAGE`` (sft: the stage's
``train_sft``; dpo: ``dpo_trainer`` on the tiny base as policy and reference, through the
same ``lmforge.align.checkpoints.train`` the stage calls) for ``STEPS`` steps with a
checkpoint every ``EVERY``, DVCLive into ``WORK/metrics/live/<stage>`` (cwd = WORK), and
prints ``RESULT {json}``: the loss curve, the steps and the final weights' path.

``FAULT`` kills this process with a real SIGKILL: ``kill_in_save:N`` while the Trainer saves
checkpoint-N (model and optimizer written, ``trainer_state.json`` not), ``kill_after_step:N``
right after step N (the step's rows already logged to DVCLive).
"""
import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: support.*

STEPS, EVERY = 6, 2


def arm(fault: str | None) -> None:
    """Install the SIGKILL for ``fault`` by wrapping two transformers methods (test-only)."""
    if not fault:
        return
    from transformers import TrainerState
    from transformers.trainer_callback import CallbackHandler

    kind, step = fault.split(":")
    step = int(step)
    if kind == "kill_in_save":
        save = TrainerState.save_to_json

        def torn(self, path):
            if f"checkpoint-{step}" in str(path):
                os.kill(os.getpid(), signal.SIGKILL)
            return save(self, path)

        TrainerState.save_to_json = torn
    elif kind == "kill_after_step":
        log = CallbackHandler.on_log

        def killed(self, args, state, control, logs):
            out = log(self, args, state, control, logs)
            if state.global_step == step:
                os.kill(os.getpid(), signal.SIGKILL)
            return out

        CallbackHandler.on_log = killed
    else:
        raise SystemExit(f"unknown fault {fault}")


def run_sft(work: Path, base: str, instr: str) -> tuple[list[float], int]:
    from lmforge.testing.align import SEED, sft_params

    from lmforge.align.common import save_model
    from lmforge.align.sft import train_sft

    p = sft_params(base, instr, work / "sft", train={"max_steps": STEPS, "lr": 1e-3, "max_length": 96},
                   checkpoints={"dir": str(work / "sft_checkpoints"), "every": EVERY, "keep_last": 2})
    model, tok, metrics, curve = train_sft(p, SEED, live="sft")
    save_model(model, tok, p.out_dir)
    return [c["loss"] for c in curve], metrics["steps"]


def run_dpo(work: Path, base: str, instr: str) -> tuple[list[float], int]:
    from lmforge.testing.align import SEED
    from support.align_dist import pairs

    from lmforge.align import checkpoints as ckpt
    from lmforge.align.common import load_causal_lm, load_tokenizer, save_model, trained_model
    from lmforge.align.dpo import DPOStageConfig, dpo_trainer
    from lmforge.config import build

    p = build(DPOStageConfig, {"sft_model": base, "train": {"max_steps": STEPS, "lr": 1e-3, "max_length": 96},
                               "checkpoints": {"dir": str(work / "dpo_checkpoints"), "every": EVERY}}, "dpo")
    tok = load_tokenizer(base)
    trainer = dpo_trainer(p, load_causal_lm(base), load_causal_lm(base), tok, pairs(instr, 40), SEED, live="dpo")
    fp = ckpt.fingerprint(ckpt.run_params(p, ("out_dir", "eval", "checkpoints")), SEED, [base])
    _, steps = ckpt.train(trainer, p.checkpoints, fp, "dpo")
    save_model(trained_model(trainer, False), tok, work / "dpo")
    return [h["loss"] for h in trainer.state.log_history if "loss" in h], steps


if __name__ == "__main__":
    from lmforge.logconfig import configure

    configure()   # as run_stage does: the stage's lines (resuming, removed checkpoints) on stdout
    stage, work, base, instr = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    arm(sys.argv[5] if len(sys.argv) > 5 else None)
    os.chdir(work)
    curve, steps = (run_sft if stage == "sft" else run_dpo)(work, base, instr)
    print("RESULT " + json.dumps({"curve": curve, "steps": steps,
                                  "weights": str(work / stage / "model.safetensors")}))
