"""The pretraining loop: DeepSpeed engine, seeded data stream, eval, checkpoints.

``pretrain()`` is the whole stage: check the data against the tokenizer and the
model, build the engine (ZeRO stage from params), resume from the newest
complete checkpoint, train to ``max_steps`` with periodic held-out evaluation
and checkpoints, then export the final weights. Every rank runs it; only rank 0
writes metrics and the export.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lmforge.model import ModelConfig, build_model, count_params, flops_per_token
from lmforge.train import checkpoint as C
from lmforge.train import dist as D
from lmforge.train.config import PretrainConfig
from lmforge.train.data import IGNORE, PackedTokens, TokenDataError
from lmforge.train.mfu import device_peak
from lmforge.train.recipe import (CosineSchedule, deepspeed_config, grad_accum_steps, lr_at,
                                  make_optimizer)


class NonFiniteLoss(RuntimeError):
    """The loss was NaN or infinite and the policy says stop (or skips ran out)."""


@dataclass
class Outputs:
    metrics_json: str = "metrics/pretrain.json"
    steps_csv: str = "metrics/pretrain_steps.csv"
    eval_csv: str = "metrics/pretrain_eval.csv"
    timing_json: str = "metrics/timing/pretrain.json"       # not a stage output: never hashed
    timing_csv: str = "metrics/timing/pretrain_steps.csv"


def lm_loss(logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy on ``y = row[1:]`` (no shift: x and y are pre-aligned)."""
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1),
                           ignore_index=IGNORE, reduction=reduction)


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


# settings that change how a run is watched or saved, not the weights it produces
RESUME_SAFE = {"tokens_dir", "tokenizer_dir", "out_dir", "eval_every", "eval_rows", "checkpoint_every",
               "keep_last", "resume", "peak_flops", "threads", "progress", "zero_stage"}


def run_fingerprint(cfg: PretrainConfig, conf, seed: int, meta: dict) -> str:
    """Hash of everything that determines the weights: recipe, model, seed and data.

    A persisted checkpoint is resumed only by a run with the same fingerprint, so
    `dvc repro` after a crash continues exactly, while `dvc repro` after a params or
    data change trains afresh instead of continuing someone else's run.
    """
    model = {k: v for k, v in conf.to_dict().items() if k not in ("transformers_version", "_name_or_path")}
    recipe = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RESUME_SAFE}
    data = {k: meta.get(k) for k in ("tokenizer_sha256", "vocab_size", "seq_len", "dtype", "splits")}
    blob = json.dumps({"recipe": recipe, "model": model, "seed": seed, "data": data}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def set_aside_stale(ckroot: Path, fingerprint: str, rank: int) -> Path | None:
    """Move checkpoints of a different run beside the folder (never delete them)."""
    newest = C.latest(ckroot)
    if newest is None:
        return None
    saved = json.loads((newest / "trainer_state.json").read_text()).get("fingerprint")
    if saved == fingerprint:
        return None
    stale = ckroot.with_name(f"{ckroot.name}-stale-{(saved or 'unknown')[:12]}")
    if rank == 0:
        if stale.exists():
            shutil.rmtree(stale)
        os.replace(ckroot, stale)
        print(f"[pretrain] WARNING: {ckroot} held a run with other params or data "
              f"(fingerprint {(saved or 'none')[:12]} != {fingerprint[:12]}); moved it to {stale} "
              f"and training afresh", flush=True)
    D.barrier()
    return stale


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
        logits = engine(input_ids=x).logits
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


def pretrain(cfg: PretrainConfig, model_cfg: ModelConfig, seed: int, out: Outputs = Outputs()) -> dict:
    """Run (or resume) pretraining; return the final metrics (same on every rank)."""
    import deepspeed

    from lmforge.train.export import export_checkpoint
    from lmforge.train.logs import StepLog

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rank, world, device = D.setup()
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    train = PackedTokens(cfg.tokens_dir, "train")
    val = PackedTokens(cfg.tokens_dir, "val")
    vocab, seq_len = check_inputs(cfg, train, val)
    special = {k: train.meta.get(k) for k in ("bos_id", "eos_id", "pad_id")}

    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    gas = grad_accum_steps(cfg.global_batch_tokens, seq_len, cfg.micro_batch_size, world)
    ds_config = deepspeed_config(cfg.zero_stage, cfg.micro_batch_size, gas, world, cfg.grad_clip, bf16)
    _seed_all(seed)
    model = build_model(model_cfg, vocab, seq_len, special)
    conf = model.config
    optimizer = make_optimizer(model, cfg.lr, cfg.betas, cfg.eps, cfg.weight_decay)

    def schedule(opt):
        return CosineSchedule(opt, cfg.lr, cfg.max_steps, cfg.warmup_steps, cfg.min_lr_ratio)

    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=schedule,
                                               config=ds_config)
    if cfg.compile:
        engine.compile()
    ckroot = Path(cfg.out_dir) / "checkpoints"
    state = {"step": 0, "samples": 0, "tokens": 0, "skipped": 0, "history": [], "evals": [],
             "timing": [], "train_seconds": 0.0, "zero_stage": cfg.zero_stage, "world_size": world}
    state["fingerprint"] = run_fingerprint(cfg, conf, seed, train.meta)
    if cfg.resume == "auto":
        set_aside_stale(ckroot, state["fingerprint"], rank)
    resume_from = C.latest(ckroot)
    if cfg.resume == "never" and resume_from is not None:
        raise ValueError(f"{ckroot}: holds checkpoints of an earlier run and pretrain.resume is 'never'; "
                         f"delete the folder or set resume: auto")
    if resume_from is not None:
        saved = json.loads((resume_from / "trainer_state.json").read_text())
        if (saved.get("zero_stage"), saved.get("world_size")) != (cfg.zero_stage, world):
            raise ValueError(f"{resume_from}: saved with ZeRO stage {saved.get('zero_stage')} on "
                             f"{saved.get('world_size')} process(es), this run is stage {cfg.zero_stage} on "
                             f"{world}; DeepSpeed cannot reshard it - resume with the same layout")
        state = C.load(engine, resume_from, rank)
        if rank == 0:
            print(f"[pretrain] resumed from {resume_from} (step {state['step']}, "
                  f"data position {state['samples']} rows)", flush=True)
    rows_per_step = cfg.micro_batch_size * gas * world
    peak, device_name = device_peak(device, cfg.peak_flops)
    fpt = flops_per_token(model_cfg, vocab, seq_len)
    log = StepLog(cfg, rank, out, state, total=cfg.max_steps)
    if not state["evals"]:
        init_loss = evaluate(engine, val, cfg.eval_rows, cfg.micro_batch_size, rank, world, device)
        log.eval(0, init_loss)

    consecutive = 0
    engine.train()
    while state["step"] < cfg.max_steps:
        step = state["step"]
        t0 = time.perf_counter()
        losses, bad = [], False
        own_norm = None
        for micro in range(gas):
            pos = state["samples"] + rank * cfg.micro_batch_size
            x, y = train.shuffled_batch(seed, pos, cfg.micro_batch_size)
            state["samples"] += cfg.micro_batch_size * world
            x, y = x.to(device), y.to(device)
            logits = engine(input_ids=x).logits
            loss = lm_loss(logits, y)
            finite = D.all_reduce_sum([0.0 if torch.isfinite(loss) else 1.0], device)[0] == 0
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
            if micro == gas - 1 and cfg.zero_stage == 0 and not bf16:
                own_norm = grad_norm(engine.module)  # DeepSpeed clips stage 0 but drops the norm
            engine.step()
        if bad:
            state["skipped"] += 1
            consecutive += 1
            print(f"[pretrain] step {step + 1}: non-finite loss, batch skipped "
                  f"(policy skip, {consecutive} in a row)", flush=True)
            if consecutive >= cfg.max_consecutive_skips:
                raise NonFiniteLoss(f"pretrain: {consecutive} consecutive non-finite steps up to step "
                                    f"{step + 1}; stopping (pretrain.max_consecutive_skips)")
        else:
            consecutive = 0
        dt = time.perf_counter() - t0
        state["step"] = step + 1
        tokens = rows_per_step * seq_len
        state["tokens"] += tokens
        state["train_seconds"] += dt
        mean_loss = sum(D.all_reduce_sum([sum(losses) / max(len(losses), 1)], device)) / world
        gn = engine.get_global_grad_norm()
        gn = own_norm if gn is None else gn
        tps = tokens / dt
        lr = lr_at(step, cfg.lr, cfg.max_steps, cfg.warmup_steps, cfg.min_lr_ratio)
        log.step(state["step"], mean_loss, lr, float(gn) if gn is not None else float("nan"), tps,
                 fpt * tps / (peak * world) if peak else float("nan"))
        last = state["step"] == cfg.max_steps
        if state["step"] % cfg.eval_every == 0 or last:
            log.eval(state["step"], evaluate(engine, val, cfg.eval_rows, cfg.micro_batch_size,
                                             rank, world, device))
        if state["step"] % cfg.checkpoint_every == 0 or last:
            C.save(engine, ckroot, state["step"], log.state_for_save(), conf, rank)
            if rank == 0:
                C.prune(ckroot, cfg.keep_last)
            log.flush()
        C._fault("kill_after_step", state["step"])
    log.close()

    final = ckroot / C.name(state["step"])
    if rank == 0:
        export_checkpoint(final, Path(cfg.out_dir) / "hf", cfg.tokenizer_dir)
    D.barrier()
    evals = state["evals"]
    n = count_params(model_cfg, vocab)
    metrics = {
        "steps": state["step"], "tokens": state["tokens"], "skipped_steps": state["skipped"],
        "init_val_loss": evals[0]["val_loss"], "init_val_ppl": evals[0]["val_ppl"],
        "val_loss": evals[-1]["val_loss"], "val_ppl": evals[-1]["val_ppl"],
        "ppl_reduction": evals[0]["val_ppl"] / evals[-1]["val_ppl"],
        "train_loss": state["history"][-1]["loss"] if state["history"] else float("nan"),
        "tokens_per_s": state["tokens"] / max(state["train_seconds"], 1e-9),
        "mfu": fpt * state["tokens"] / max(state["train_seconds"], 1e-9) / (peak * world) if peak else None,
        "train_seconds": round(state["train_seconds"], 3),
        "device": device_name, "peak_flops_per_device": peak, "world_size": world,
        "zero_stage": cfg.zero_stage, "precision": "bf16" if bf16 else "fp32",
        "grad_accum_steps": gas, "global_batch_tokens": rows_per_step * seq_len,
        "params": n["total"], "params_non_embedding": n["non_embedding"], "seq_len": seq_len,
        "vocab_size": vocab, "checkpoint": str(final),
    }
    if rank == 0:
        log.finish(metrics)
    return metrics
