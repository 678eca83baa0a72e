"""Direct preference optimisation with TRL's DPOTrainer, then the final gate.

The policy starts from ``models/sft`` and is held near the SFT model (the frozen
reference, or the adapter-free base when LoRA is on) by β (``dpo.beta``, 0.1 by
default). Training pairs are the preference stage's pairs plus rejection-sampled
ones made here with the reward model (best vs worst of n samples per prompt).

Reported: implicit-reward margins β·[(log π − log π_ref)(chosen) − (…)(rejected)]
and preference accuracy on held-out pairs; the policy's log-prob margin on its own
training pairs before and after (DPO should widen it); token-wise KL(π‖π_ref) on
held-out prompts; DPO against SFT under the reward model as wins, ties (the same
reply, or the same score) and losses, never a tie as half a win; and the
SFT gate's measurements (perplexity, refusal, over-refusal) for the DPO model.

KL during training: TRL 1.16's DPOTrainer logs rewards (chosen, rejected, margins,
accuracies), policy log-probs and logits, but no KL. At each logging step a callback
measures ``kl``: the mean over reply tokens of KL(π(·|ctx) ‖ π_ref(·|ctx)), exact over
the vocabulary, on a fixed probe (the first ``dpo.kl_probe`` held-out pairs: prompt and
chosen reply). It goes into the trainer's logs (so DVCLive and metrics/dpo_loss.csv get
it) and costs two forward passes per probe pair per logged step. Its contexts are fixed
data, so it is not the same number as ``kl_token`` in metrics/dpo.json, measured once
after training on the policy's own replies to held-out prompts.

Checkpoints (``dpo.checkpoints``, ``models/dpo_checkpoints``) and the passthrough
``dpo.trl_args`` work as SFT's do (``lmforge.align.checkpoints``, ``lmforge.align.trl_args``).
A resumed run redoes the rejection sampling (seeded: the same pairs) before it continues.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pandas as pd

from lmforge.align import checkpoints as ckpt
from lmforge.align import trl_args
from lmforge.align.common import (AdapterConfig, TrainConfig, check_devices, live_callbacks, load_causal_lm,
                                  load_tokenizer, trained_model, trl_kwargs, with_context)
from lmforge.align.evaluate import (GateEvalConfig, completion_logprobs, generate_replies, policy_metrics, reward_scores,
                                   token_kl)
from lmforge.align.preferences import ENDINGS, PreferenceConfig, check_pairs, rejection_pairs, to_dataset
from lmforge.align.reward import load_reward_model, read_pairs
from lmforge.chat import stop_token_ids
from lmforge.config import require
from lmforge.io import atomic_path


@dataclasses.dataclass
class DPOStageConfig:
    sft_model: str = "models/sft"
    reward_model: str = "models/reward"
    pairs_dir: str = "data/preferences"
    data_dir: str = "data/instructions_checked"
    out_dir: str = "models/dpo"
    rejection_out: str = "data/preferences/rejection_sampled.parquet"
    beta: float = 0.1
    rejection_prompts: int = 32  # (a) rejection sampling: prompts ...
    rejection_samples: int = 4  # ... and samples per prompt
    kl_probe: int = 8  # held-out pairs the KL curve is measured on at each logging step; 0 = none
    # RPO: weight of an NLL loss on the chosen reply beside DPO's (TRL's loss_type [sigmoid, sft]); 0 = plain DPO
    sft_weight: float = 0.0
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(max_steps=30, lr=5e-4))
    lora: AdapterConfig = dataclasses.field(default_factory=AdapterConfig)
    eval: GateEvalConfig = dataclasses.field(default_factory=GateEvalConfig)
    checkpoints: ckpt.CheckpointConfig = dataclasses.field(default_factory=ckpt.CheckpointConfig)
    trl_args: dict[str, Any] = dataclasses.field(default_factory=dict)   # any other DPOConfig field

    def check_installed(self) -> None:
        """``trl_args`` against the installed TRL's DPOConfig (``lmforge check``)."""
        trl_args.check_installed("DPOConfig", self.trl_args, "dpo.trl_args")

    def __post_init__(self):
        require(self.beta > 0, f"dpo.beta must be > 0, got {self.beta}")
        require(self.rejection_samples >= 2, f"dpo.rejection_samples must be >= 2, got {self.rejection_samples}")
        require(self.rejection_prompts >= 0, "dpo.rejection_prompts must be >= 0")
        require(self.kl_probe >= 0, f"dpo.kl_probe must be >= 0, got {self.kl_probe}")
        require(self.sft_weight >= 0, f"dpo.sft_weight must be >= 0, got {self.sft_weight}")


def logp_margins(model, tok, df: pd.DataFrame, max_length: int) -> list[float]:
    """log π(chosen) − log π(rejected) per pair (completion tokens only)."""
    c, _ = completion_logprobs(model, tok, df.prompt.tolist(), df.chosen.tolist(), max_length)
    r, _ = completion_logprobs(model, tok, df.prompt.tolist(), df.rejected.tolist(), max_length)
    return [a - b for a, b in zip(c, r)]


def implicit_rewards(policy, ref, tok, df: pd.DataFrame, beta: float, max_length: int) -> tuple[float, float]:
    """Mean DPO implicit-reward margin and preference accuracy on ``df``."""
    pm, rm = logp_margins(policy, tok, df, max_length), logp_margins(ref, tok, df, max_length)
    margins = [beta * (a - b) for a, b in zip(pm, rm)]
    return sum(margins) / max(1, len(margins)), sum(m > 0 for m in margins) / max(1, len(margins))


def compare_replies(rm, tok, prompts: list[str], new: list[str], old: list[str], max_length: int) -> dict:
    """Wins, ties and losses of ``new`` against ``old`` under the reward model, and their rates.

    A tie is the same reply or the same score; it is neither a win nor half of one, so
    a DPO model that says what SFT says has win rate 0, not 0.5."""
    a, b = reward_scores(rm, tok, prompts, new, max_length), reward_scores(rm, tok, prompts, old, max_length)
    ties = [n == o or x == y for x, y, n, o in zip(a, b, new, old)]
    wins = sum(x > y and not t for x, y, t in zip(a, b, ties))
    losses = sum(x < y and not t for x, y, t in zip(a, b, ties))
    n = max(1, len(prompts))
    return {"wins": wins, "ties": sum(ties), "losses": losses, "win_rate": wins / n, "loss_rate": losses / n}


def make_rejection_pairs(p: DPOStageConfig, pref: PreferenceConfig, policy, rm, tok, seed: int) -> tuple[pd.DataFrame, dict]:
    if p.rejection_prompts == 0:
        return (pd.DataFrame(columns=["prompt", "chosen", "rejected", "source", *ENDINGS, "score_margin"]),
                {"identical": 0, "unmatched_ending": 0})
    src = pd.read_parquet(f"{p.data_dir}/train.parquet")
    prompts = src[src.source != "refusal"].sample(min(p.rejection_prompts, len(src)),
                                                  random_state=seed + 7).prompt.tolist()
    return rejection_pairs(policy, rm, tok, prompts, p.rejection_samples, pref, seed, p.train.max_length)


def kl_callback(tok, probe: pd.DataFrame, max_length: int):
    """A TrainerCallback that adds ``kl`` (token KL of the policy from the reference on ``probe``) to
    each training log, before DVCLive's callback sees it; its ``ref`` is set once the trainer exists."""
    from transformers import TrainerCallback

    class _KL(TrainerCallback):
        ref = None

        def on_log(self, args, state, control, model=None, logs=None, **kwargs):
            if logs is None or "loss" not in logs or self.ref is None or probe.empty:
                return
            training = model.training
            model.eval()   # every rank measures (ZeRO-3 forwards are collective); rank 0 logs it
            logs["kl"] = token_kl(model, self.ref, tok, probe.prompt.tolist(), probe.chosen.tolist(), max_length)
            model.train(training)
            if state.log_history and state.log_history[-1].get("step") == state.global_step:
                state.log_history[-1]["kl"] = logs["kl"]

    return _KL()


class _AdapterOff:
    """The LoRA policy with its adapter off: DPO's reference when LoRA is on."""

    def __init__(self, model):
        self.model, self.device = model, model.device

    def __call__(self, **kw):
        with self.model.disable_adapter():
            return self.model(**kw)


def dpo_trainer(p: DPOStageConfig, policy, ref, tok, pairs: pd.DataFrame, seed: int, work_dir: str | None = None,
                live: str | None = None, probe: pd.DataFrame | None = None):
    """TRL's DPOTrainer for ``policy`` against the frozen ``ref`` (no gradients, no optimizer state).

    TRL runs the reference under ``no_grad`` and builds the optimizer from the
    policy only; freezing it here also keeps ZeRO/accelerate from treating it as
    trainable. With LoRA the adapter-free policy is the reference and ``ref`` is unused.
    ``probe`` (held-out pairs) gives the logged ``kl`` curve.
    """
    from trl import DPOConfig, DPOTrainer

    loss = {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, p.sft_weight]} if p.sft_weight else {}
    fixed = dict(beta=p.beta, max_length=p.train.max_length, **loss,
                 **trl_kwargs(p.train, seed, work_dir, p.checkpoints))
    args = trl_args.build(DPOConfig, fixed, p.trl_args, "dpo.trl_args")
    peft = p.lora.peft_config(policy)
    if not peft:
        ref.requires_grad_(False).eval()
    kl = kl_callback(tok, probe if probe is not None else pd.DataFrame(), p.train.max_length)
    ended = pairs["chosen_ended"].fillna(True) if "chosen_ended" in pairs else [True] * len(pairs)
    cut = [not bool(e) for e in ended]
    trainer = DPOTrainer(model=policy, ref_model=None if peft else ref, args=args,
                         train_dataset=to_dataset(pairs).add_column("cut", cut), processing_class=tok,
                         peft_config=peft, callbacks=[kl, *live_callbacks(live)])
    trainer.train_dataset = open_cut_turns(trainer.train_dataset, stop_token_ids(tok))
    kl.ref = _AdapterOff(trainer.model) if peft else trainer.ref_model
    return trainer


def open_cut_turns(ds, stops: list[int]):
    """TRL renders every reply as a closed turn (the chat template's end token after it). A pair
    cut by the token budget on both sides (preferences.py) never ended: its replies lose that
    closing, so DPO is not taught an end the model did not produce."""
    stops = set(stops)

    def _open(ex):
        if ex["cut"]:
            for key in ("chosen_ids", "rejected_ids"):
                ends = [i for i, t in enumerate(ex[key]) if t in stops]
                ex[key] = ex[key][:ends[-1]] if ends else ex[key]
        return ex

    return ds.map(_open).remove_columns("cut")


def train_dpo(p: DPOStageConfig, pref: PreferenceConfig, seed: int, work_dir: str | None = None,
              live: str | None = None):
    """Returns (model, tokenizer, metrics, curve, samples); the caller gates, reports and saves."""
    p = with_context(p, p.sft_model)
    p.check_installed()   # the TRL passthrough before the sampling, not after it
    tok = load_tokenizer(p.sft_model)
    policy = load_causal_lm(p.sft_model, "dpo.sft_model")
    ref = load_causal_lm(p.sft_model, "dpo.sft_model")
    rm = load_reward_model(p.reward_model)
    train, val = read_pairs(p.pairs_dir, "train"), read_pairs(p.pairs_dir, "val")
    rs, rs_dropped = make_rejection_pairs(p, pref, policy, rm, tok, seed)
    if os.environ.get("RANK", "0") == "0":   # the same pairs on every rank (same seed); one writes them
        with atomic_path(p.rejection_out) as tmp:  # the dpo stage lists it as an out
            rs.to_parquet(tmp, index=False)
    cols = [c for c in train.columns if c in rs.columns]
    train_all = check_pairs(pd.concat([train[cols], rs[cols]], ignore_index=True), "dpo training pairs")
    before = logp_margins(policy, tok, train_all, p.train.max_length)

    trainer = dpo_trainer(p, policy, ref, tok, train_all, seed, work_dir, live, val.head(p.kl_probe))
    check_devices(trainer.args.device, reference=ref, reward_model=rm)   # no model left behind on a CPU
    inputs = [p.sft_model, p.reward_model, Path(p.pairs_dir) / "train.parquet", Path(p.pairs_dir) / "val.parquet",
              Path(p.data_dir) / "train.parquet"]
    drop = ("out_dir", "eval", "checkpoints", "rejection_out", "kl_probe")
    train_loss, steps = ckpt.train(trainer, p.checkpoints, ckpt.fingerprint(ckpt.run_params(p, drop), seed, inputs),
                                   "dpo")
    policy = trained_model(trainer, p.lora.enabled)
    policy.eval()
    check_devices(trainer.args.device, policy=policy)
    after = logp_margins(policy, tok, train_all, p.train.max_length)

    margin, acc = implicit_rewards(policy, ref, tok, val, p.beta, p.train.max_length)
    metrics, samples, replies = policy_metrics(policy, tok, p.data_dir, p.eval, p.train.max_length, "dpo")
    val_prompts = pd.read_parquet(f"{p.data_dir}/val.parquet").head(p.eval.max_val).prompt.tolist()
    sft_replies = generate_replies(ref, tok, val_prompts, p.eval.max_new_tokens, p.eval.repetition_penalty)
    metrics.update({
        **compare_replies(rm, tok, val_prompts, replies, sft_replies, p.train.max_length),
        "kl_token": token_kl(policy, ref, tok, val_prompts, replies, p.train.max_length),
        "reward_margin": margin, "preference_accuracy": acc,
        "train_logp_margin_before": sum(before) / len(before), "train_logp_margin_after": sum(after) / len(after),
        "train_pairs": len(train_all), "rejection_pairs": len(rs),
        "rejection_dropped_identical": rs_dropped["identical"],
        "rejection_dropped_unmatched_ending": rs_dropped["unmatched_ending"],
        "train_loss": train_loss, "steps": steps, "beta": p.beta,
    })
    samples += [("sft (reference) / held-out", q, r) for q, r in zip(val_prompts[:2], sft_replies[:2])]
    curve = [{"step": h["step"], "loss": h["loss"], "margin": h.get("rewards/margins", float("nan")),
              "kl": h.get("kl", float("nan"))} for h in trainer.state.log_history if "loss" in h]
    return policy, tok, metrics, curve, samples
