"""The pretraining loop: DeepSpeed engine, seeded data stream, eval, checkpoints.

``pretrain()`` is the whole stage: check the data against the tokenizer and the
model, build the engine (ZeRO stage from params), resume from the newest
complete checkpoint, train to ``max_steps`` with periodic held-out evaluation
and checkpoints, then export the final weights. Every rank runs it; only rank 0
writes metrics and the export.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lmforge.model import ModelConfig, build_model, count_params, flops_per_token, token_cross_entropy
from lmforge.train import checkpoint as C
from lmforge.train import dist as D
from lmforge.stage import StageFailure
from lmforge.train.config import PretrainConfig
from lmforge.train.data import IGNORE, PackedTokens, TokenDataError
from lmforge.train.mfu import device_peak
from lmforge.train.recipe import (CosineSchedule, deepspeed_config, grad_accum_steps, lr_at,
                                  make_optimizer)
from lmforge.train.resume import resume, run_fingerprint
from lmforge.train.zero_init import build_partitioned, local_numel

log = logging.getLogger(__name__)


class NonFiniteLoss(StageFailure):
    """The loss was NaN or infinite and the policy says stop (or skips ran out)."""


@dataclass
class Outputs:
    metrics_json: str = "metrics/pretrain.json"
    steps_csv: str = "metrics/pretrain_steps.csv"
    eval_csv: str = "metrics/pretrain_eval.csv"
    timing_json: str = "metrics/timing/pretrain.json"       # not a stage output: never hashed
    timing_csv: str = "metrics/timing/pretrain_steps.csv"
    live_dir: str = "metrics/live/pretrain"                  # DVCLive, every step (lmforge.live)
    timing_live_dir: str = "metrics/timing/live/pretrain"


def lm_loss(logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy on ``y = row[1:]`` (no shift: x and y are pre-aligned), in fp32
    without an fp32 copy of bf16 logits (``lmforge.model.token_cross_entropy``)."""
    return token_cross_entropy(logits, y, ignore_index=IGNORE, reduction=reduction)


def tokenizer_vocab(tokenizer_dir: str) -> int:
    from transformers import AutoTokenizer

    return len(AutoTokenizer.from_pretrained(tokenizer_dir))


@torch.no_grad()
def grad_norm(module) -> float:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))) \
        if grads else float("nan")


def check_inputs(cfg: PretrainConfig, train: PackedTokens, val: PackedTokens) -> tuple[int, int]:
    """Vocabulary and context the model is built for; raise on any mismatch."""
    seq_len = cfg.seq_len if cfg.seq_len is not None else train.seq_len
    vocab = train.vocab_size
    if Path(cfg.tokenizer_dir).exists():
        tok_vocab = tokenizer_vocab(cfg.tokenizer_dir)
        if tok_vocab != vocab:
            raise TokenDataError(f"{train.root}/meta.json: vocab_size {vocab} does not match the tokenizer "
                                 f"in {cfg.tokenizer_dir} ({tok_vocab} tokens) - retokenize the data")
    for split in (train, val):
        split.check_fits(vocab, seq_len)
    return vocab, seq_len


@torch.no_grad()
def evaluate(engine, val: PackedTokens, rows: int, micro: int, rank: int, world: int, device) -> float:
    """Mean held-out loss over the first ``rows`` val rows, split across ranks."""
    was_training = engine.module.training
    engine.eval()
    n = max(world, min(rows, val.rows) // world * world)
    mine = list(range(rank, n, world)) if val.rows >= world else [0]
    total, count = 0.0, 0.0
    for i in range(0, len(mine), micro):
        x, y = val.rows_to_batch([j % val.rows for j in mine[i:i + micro]])
        x, y = x.to(device), y.to(device)
        logits = engine(input_ids=x, use_cache=False).logits   # no KV cache in training
        total += float(lm_loss(logits, y, reduction="sum"))
        count += float((y != IGNORE).sum())
    total, count = D.all_reduce_sum([total, count], device)
    if was_training:
        engine.train()
    return total / max(count, 1.0)


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Run:
    """What one pretraining run holds between its phases (setup, resume, steps, finish)."""

    cfg: PretrainConfig
    model_cfg: ModelConfig
    seed: int
    engine: object
    conf: object            # the model's LlamaConfig
    train: PackedTokens
    val: PackedTokens
    state: dict             # step, data position, metric history: what a checkpoint stores
    ckroot: Path
    rank: int
    world: int
    device: torch.device
    gas: int                # gradient-accumulation steps
    bf16: bool
    vocab: int
    seq_len: int
    peak: float | None      # peak FLOP/s per device (MFU's denominator)
    device_name: str
    log: object = None
    skips_in_a_row: int = 0

    @property
    def rows_per_step(self) -> int:
        return self.cfg.micro_batch_size * self.gas * self.world


def setup(cfg: PretrainConfig, model_cfg: ModelConfig, seed: int) -> Run:
    """Process group, data checked against tokenizer and model, DeepSpeed engine."""
    import deepspeed

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rank, world, device = D.setup()
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    train = PackedTokens(cfg.tokens_dir, "train")
    val = PackedTokens(cfg.tokens_dir, "val")
    vocab, seq_len = check_inputs(cfg, train, val)
    special = {k: train.meta.get(k) for k in ("bos_id", "eos_id", "pad_id")}

    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and D.native_bf16())
    gas = grad_accum_steps(cfg.global_batch_tokens, seq_len, cfg.micro_batch_size, world)
    ds_config = deepspeed_config(cfg.zero_stage, cfg.micro_batch_size, gas, world, cfg.grad_clip, bf16)
    ckroot = Path(cfg.out_dir) / "checkpoints"
    if C.needs_universal(C.latest(ckroot), cfg.zero_stage, world):   # resharding on resume
        ds_config["checkpoint"] = {"load_universal": True}
    _seed_all(seed)
    if cfg.zero_stage == 3:   # partitioned as it is built: no rank holds the whole model
        model = build_partitioned(lambda: build_model(model_cfg, vocab, seq_len, special), ds_config)
        log.info("rank %d: %s parameter elements held (ZeRO-3 partition)", rank, f"{local_numel(model):,}")
    else:
        model = build_model(model_cfg, vocab, seq_len, special)
    optimizer = make_optimizer(model, cfg.lr, cfg.betas, cfg.eps, cfg.weight_decay)

    def schedule(opt):
        return CosineSchedule(opt, cfg.lr, cfg.max_steps, cfg.warmup_steps, cfg.min_lr_ratio)

    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=schedule,
                                           config=ds_config)
    if cfg.compile:
        engine.compile()
    state = {"step": 0, "samples": 0, "tokens": 0, "skipped": 0, "history": [], "evals": [],
             "timing": [], "train_seconds": 0.0, "zero_stage": cfg.zero_stage, "world_size": world,
             "precision": "bf16" if bf16 else "fp32", "device": device.type}
    state["fingerprint"] = run_fingerprint(cfg, model.config, seed, train.meta, state["precision"])
    peak, device_name = device_peak(device, cfg.peak_flops)
    return Run(cfg, model_cfg, seed, engine, model.config, train, val, state, ckroot,
               rank, world, device, gas, bf16, vocab, seq_len, peak, device_name)


def _micro_batches(run: Run, step: int) -> tuple[list[float], bool, float | None]:
    """Forward and backward over one step's micro-batches: losses, any non-finite, stage-0 norm."""
    cfg, state, engine = run.cfg, run.state, run.engine
    losses, bad, own_norm = [], False, None
    for micro in range(run.gas):
        pos = state["samples"] + run.rank * cfg.micro_batch_size
        x, y = run.train.shuffled_batch(run.seed, pos, cfg.micro_batch_size)
        state["samples"] += cfg.micro_batch_size * run.world
        x, y = x.to(run.device), y.to(run.device)
        logits = engine(input_ids=x, use_cache=False).logits   # no KV cache in training
        loss = lm_loss(logits, y)
        finite = D.all_reduce_sum([0.0 if torch.isfinite(loss) else 1.0], run.device)[0] == 0
        if not finite:
            bad = True
            if cfg.nan_policy == "stop":
                raise NonFiniteLoss(f"pretrain: non-finite loss {float(loss.detach())} at step {step + 1} "
                                    f"(data rows {pos}..{pos + cfg.micro_batch_size}); "
                                    f"policy pretrain.nan_policy=stop")
            # skip: this micro-batch contributes a zero gradient (NaN-free by nan_to_num)
            loss = logits.float().nan_to_num(0.0, 0.0, 0.0).sum() * 0.0
        else:
            losses.append(float(loss.detach()))
        engine.backward(loss)
        if micro == run.gas - 1 and cfg.zero_stage == 0 and not run.bf16:
            own_norm = grad_norm(engine.module)  # DeepSpeed clips stage 0 but drops the norm
        engine.step()
    return losses, bad, own_norm


def _count_skip(run: Run, step: int, bad: bool) -> None:
    if not bad:
        run.skips_in_a_row = 0
        return
    run.state["skipped"] += 1
    run.skips_in_a_row += 1
    log.warning("step %d: non-finite loss, batch skipped (policy skip, %d in a row)", step + 1, run.skips_in_a_row)
    if run.skips_in_a_row >= run.cfg.max_consecutive_skips:
        raise NonFiniteLoss(f"pretrain: {run.skips_in_a_row} consecutive non-finite steps up to step "
                            f"{step + 1}; stopping (pretrain.max_consecutive_skips)")


def train_step(run: Run, flops_per_tok: float) -> None:
    """One optimizer step, then its log row, eval and checkpoint when they are due."""
    cfg, state, engine = run.cfg, run.state, run.engine
    step = state["step"]
    t0 = time.perf_counter()
    losses, bad, own_norm = _micro_batches(run, step)
    _count_skip(run, step, bad)
    dt = time.perf_counter() - t0
    state["step"] = step + 1
    tokens = run.rows_per_step * run.seq_len
    state["tokens"] += tokens
    state["train_seconds"] += dt
    mean_loss = sum(D.all_reduce_sum([sum(losses) / max(len(losses), 1)], run.device)) / run.world
    gn = engine.get_global_grad_norm()
    gn = own_norm if gn is None else gn
    tps = tokens / dt
    lr = lr_at(step, cfg.lr, cfg.max_steps, cfg.warmup_steps, cfg.min_lr_ratio)
    run.log.step(state["step"], mean_loss, lr, float(gn) if gn is not None else float("nan"), tps,
                 flops_per_tok * tps / (run.peak * run.world) if run.peak else float("nan"))
    last = state["step"] == cfg.max_steps
    if state["step"] % cfg.eval_every == 0 or last:
        run.log.eval(state["step"], evaluate(engine, run.val, cfg.eval_rows, cfg.micro_batch_size,
                                             run.rank, run.world, run.device))
    if state["step"] % cfg.checkpoint_every == 0 or last:
        C.save(engine, run.ckroot, state["step"], run.log.state_for_save(), run.conf, run.rank)
        if run.rank == 0:
            C.prune(run.ckroot, cfg.keep_last)
        run.log.flush()
    C._fault("kill_after_step", state["step"])


def finish(run: Run, flops_per_tok: float) -> dict:
    """Export the final checkpoint (rank 0) and the run's metrics (same on every rank)."""
    from lmforge.train.export import export_checkpoint

    state, cfg = run.state, run.cfg
    final = run.ckroot / C.name(state["step"])
    if run.rank == 0:
        export_checkpoint(final, Path(cfg.out_dir) / "hf", cfg.tokenizer_dir)
    D.barrier()
    evals = state["evals"]
    n = count_params(run.model_cfg, run.vocab)
    seconds = max(state["train_seconds"], 1e-9)
    return {
        "steps": state["step"], "tokens": state["tokens"], "skipped_steps": state["skipped"],
        "init_val_loss": evals[0]["val_loss"], "init_val_ppl": evals[0]["val_ppl"],
        "val_loss": evals[-1]["val_loss"], "val_ppl": evals[-1]["val_ppl"],
        "ppl_reduction": evals[0]["val_ppl"] / evals[-1]["val_ppl"],
        "train_loss": state["history"][-1]["loss"] if state["history"] else float("nan"),
        "tokens_per_s": state["tokens"] / seconds,
        "mfu": flops_per_tok * state["tokens"] / seconds / (run.peak * run.world) if run.peak else None,
        "train_seconds": round(state["train_seconds"], 3),
        "device": run.device_name, "peak_flops_per_device": run.peak, "world_size": run.world,
        "zero_stage": cfg.zero_stage, "precision": "bf16" if run.bf16 else "fp32",
        "grad_accum_steps": run.gas, "global_batch_tokens": run.rows_per_step * run.seq_len,
        "params": n["total"], "params_non_embedding": n["non_embedding"], "seq_len": run.seq_len,
        "vocab_size": run.vocab, "checkpoint": str(final),
    }


def pretrain(cfg: PretrainConfig, model_cfg: ModelConfig, seed: int, out: Outputs = Outputs()) -> dict:
    """Run (or resume) pretraining; return the final metrics (same on every rank)."""
    from lmforge.train.logs import StepLog

    run = setup(cfg, model_cfg, seed)
    resume(run)
    fpt = flops_per_token(model_cfg, run.vocab, run.seq_len)
    run.log = StepLog(cfg, run.rank, out, run.state, total=cfg.max_steps)
    if not run.state["evals"]:
        run.log.eval(0, evaluate(run.engine, run.val, cfg.eval_rows, cfg.micro_batch_size,
                                 run.rank, run.world, run.device))
    run.engine.train()
    while run.state["step"] < cfg.max_steps:
        train_step(run, fpt)
    run.log.close()
    metrics = finish(run, fpt)
    if run.rank == 0:
        run.log.finish(metrics)
    return metrics
