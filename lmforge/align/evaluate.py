"""Evaluation and gates for the aligned models.

Measurements: held-out perplexity of the reference answers (completion tokens only,
prompt masked exactly as in SFT), refusal rate on the held-out safety prompts and
over-refusal on ordinary held-out prompts (greedy replies checked for refusal
phrases), reward-model scores, and the token-wise KL(π‖π_ref) over the full
next-token distributions along the policy's own greedy replies.

Degenerate output (``lmforge.replies``): the share of empty replies, of replies
under ``gate.short_words`` words and the repetition inside replies, on the greedy
replies to the held-out prompts, so a mute or looping model fails however good its
perplexity. The refusal rate is measured (and gated) only where ``min_refusal_rate`` is
set: a configuration that cannot learn refusals reports "not measured", not "0 >= 0".

A gate compares measurements with thresholds from params.yaml. ``mode: fail``
raises ``GateError`` (the stage exits non-zero, so ``dvc repro`` stops with the
message); ``mode: warn`` prints the same message and goes on. Either way the
metrics, the gate verdicts and sample generations land in a Markdown report.
"""
from __future__ import annotations

import dataclasses
import math

from lmforge.align.common import prompt_text
from lmforge.config import require
from lmforge.gates import GateError, enforce, threshold_failures, verdict
from lmforge.replies import ReplyGate, reply_failures, reply_stats
from lmforge.io import write_text

__all__ = ["GateError", "GateConfig", "GateEvalConfig", "policy_metrics", "record_and_gate"]


@dataclasses.dataclass
class GateConfig(ReplyGate):
    """The degenerate-output thresholds of every generation gate (and ``mode``), plus the
    post-training ones."""

    max_perplexity: float | None = None
    min_refusal_rate: float | None = None  # null = refusals not measured (the config cannot learn them)
    max_over_refusal: float | None = None
    min_win_rate: float | None = None  # DPO wins over SFT / prompts; a tie is no win (dpo gate only)
    max_loss_rate: float | None = None  # DPO losses to SFT / prompts (dpo gate only)

    def __post_init__(self):
        super().__post_init__()
        for k in ("min_refusal_rate", "max_over_refusal", "min_win_rate", "max_loss_rate"):
            v = getattr(self, k)
            require(v is None or 0.0 <= v <= 1.0, f"gate.{k} must be in [0, 1], got {v}")
        require(self.max_perplexity is None or self.max_perplexity > 1.0,
                f"gate.max_perplexity must be > 1, got {self.max_perplexity}")


@dataclasses.dataclass
class GateEvalConfig:
    max_val: int = 48  # held-out pairs for perplexity / prompts for win rate and over-refusal
    max_new_tokens: int = 32
    samples: int = 6  # generations shown in the report
    repetition_penalty: float | None = None  # greedy decoding's penalty (real-model profile); null = none
    refusal_markers: list[str] = dataclasses.field(
        default_factory=lambda: ["I can't help", "I cannot help", "I can not help", "I won't", "I will not"])
    gate: GateConfig = dataclasses.field(default_factory=GateConfig)


def _encode_pair(tok, prompt: str, response: str, max_length: int):
    """Token ids of prompt+response through the chat template and the completion mask."""
    msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    p_ids = tok(prompt_text(tok, prompt), add_special_tokens=False)["input_ids"]
    full = tok(tok.apply_chat_template(msgs, tokenize=False), add_special_tokens=False)["input_ids"]
    n = 0
    while n < min(len(p_ids), len(full)) and p_ids[n] == full[n]:
        n += 1
    full = full[:max_length]
    return full, [0] * min(n, len(full)) + [1] * max(0, len(full) - n)


def completion_logprobs(model, tok, prompts: list[str], responses: list[str], max_length: int = 256,
                        batch_size: int = 8) -> tuple[list[float], list[int]]:
    """Sum of log p(response token) per example, and the number of response tokens."""
    import torch

    sums, counts = [], []
    model.eval()
    for i in range(0, len(prompts), batch_size):
        enc = [_encode_pair(tok, p, r, max_length) for p, r in zip(prompts[i:i + batch_size],
                                                                  responses[i:i + batch_size])]
        width = max(len(ids) for ids, _ in enc)
        pad = tok.pad_token_id
        ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in enc])
        mask = torch.tensor([m + [0] * (width - len(m)) for _, m in enc])
        attn = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in enc])
        with torch.no_grad():
            logits = model(input_ids=ids.to(model.device), attention_mask=attn.to(model.device)).logits
        logits = logits[:, :-1].float().cpu()
        lp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0] * mask[:, 1:]
        sums += lp.sum(-1).tolist()
        counts += mask[:, 1:].sum(-1).tolist()
    return sums, counts


def perplexity(model, tok, prompts, responses, max_length: int = 256) -> float:
    s, n = completion_logprobs(model, tok, prompts, responses, max_length)
    return float(math.exp(-sum(s) / max(1, sum(n))))


def is_refusal(text: str, markers: list[str]) -> bool:
    head = text[:120].lower()
    return any(m.lower() in head for m in markers)


def refusal_rate(replies: list[str], markers: list[str]) -> float:
    return sum(is_refusal(r, markers) for r in replies) / max(1, len(replies))


def reward_scores(rm, tok, prompts: list[str], responses: list[str], max_length: int = 256,
                  batch_size: int = 8) -> list[float]:
    import torch

    rm.eval()
    out: list[float] = []
    side, tok.padding_side = tok.padding_side, "right"
    try:
        for i in range(0, len(prompts), batch_size):
            texts = [tok.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": r}],
                                             tokenize=False)
                     for p, r in zip(prompts[i:i + batch_size], responses[i:i + batch_size])]
            enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_length,
                      add_special_tokens=False)
            with torch.no_grad():
                out += rm(input_ids=enc["input_ids"].to(rm.device),
                          attention_mask=enc["attention_mask"].to(rm.device)).logits[:, 0].tolist()
    finally:
        tok.padding_side = side
    return out


def token_kl(policy, ref, tok, prompts: list[str], replies: list[str], max_length: int = 256) -> float:
    """Mean over reply tokens of KL(π(·|ctx) ‖ π_ref(·|ctx)), contexts from the policy's replies."""
    import torch

    total, count = 0.0, 0
    for p, r in zip(prompts, replies):
        ids, mask = _encode_pair(tok, p, r, max_length)
        x = torch.tensor([ids])
        with torch.no_grad():
            lp = torch.log_softmax(policy(input_ids=x.to(policy.device)).logits[0, :-1].float().cpu(), -1)
            lq = torch.log_softmax(ref(input_ids=x.to(ref.device)).logits[0, :-1].float().cpu(), -1)
        kl = (lp.exp() * (lp - lq)).sum(-1)
        m = torch.tensor(mask[1:], dtype=kl.dtype)
        total += float((kl * m).sum())
        count += int(m.sum())
    return total / max(1, count)


def gate_failures(stage: str, metrics: dict, gate: GateConfig) -> list[str]:
    """Every threshold of ``gate`` that ``metrics`` misses, as readable lines (``lmforge.gates``)."""
    bounds = [("perplexity", "<=", gate.max_perplexity), ("refusal_rate", ">=", gate.min_refusal_rate),
              ("over_refusal", "<=", gate.max_over_refusal), ("win_rate", ">=", gate.min_win_rate),
              ("loss_rate", "<=", gate.max_loss_rate)]
    where = f"{stage}.eval.gate"
    return threshold_failures(metrics, bounds, where) + reply_failures(metrics, gate, where)


def record_and_gate(stage: str, metrics: dict, curve: list[dict], gate: GateConfig,
                    samples: list[tuple[str, str, str]], metrics_dir: str = "metrics",
                    report_dir: str = "reports") -> list[str]:
    """Write metrics JSON, loss-curve CSV and the Markdown report, then apply the gate.

    ``mode: fail`` raises GateError after everything is written (so the report shows
    why); ``mode: warn`` prints the failures and returns them."""
    from lmforge.io import write_csv, write_json

    failures = gate_failures(stage, metrics, gate)
    shown = [{"kind": k, "prompt": p, "reply": r} for k, p, r in samples]
    write_json(f"{metrics_dir}/{stage}.json", {**metrics, **verdict(failures), "not_gated": not_gated(gate),
                                               "samples": shown})
    write_csv(f"{metrics_dir}/{stage}_loss.csv", curve)
    write_report(f"{report_dir}/{stage}.md", f"lmforge {stage} evaluation", metrics, failures, gate, samples)
    enforce(stage, failures, gate.mode, f"thresholds: params.yaml {stage}.eval.gate; report: {report_dir}/{stage}.md")
    return failures


def write_report(path: str, title: str, metrics: dict, failures: list[str], gate: GateConfig,
                 samples: list[tuple[str, str, str]]) -> None:
    """Markdown report: metrics table, gate verdict, (kind, prompt, reply) samples."""
    lines = [f"# {title}", "", "| metric | value |", "|---|---|"]
    for k, v in sorted(metrics.items()):
        if isinstance(v, (int, float)):
            lines.append(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |")
    verdict = "PASSED" if not failures else ("FAILED" if gate.mode == "fail" else "FAILED (warn only)")
    lines += ["", f"## Gate: {verdict}", ""]
    lines += [f"- {f}" for f in failures] or ["- all thresholds met: " + ", ".join(
        f"{k}={v}" for k, v in dataclasses.asdict(gate).items() if v is not None)]
    if not_gated(gate):
        lines.append("- not gated (threshold null): " + ", ".join(not_gated(gate)))
    if "refusal_rate" not in metrics:
        lines.append("- refusal rate: not measured (min_refusal_rate is null: this configuration does not "
                     "learn refusals)")
    lines += ["", "## Samples", ""]
    for kind, prompt, reply in samples:
        lines += [f"**{kind}** — *{prompt}*", "", "> " + (reply.replace("\n", "\n> ") or "(empty reply)"), ""]
    write_text(path, "\n".join(lines) + "\n")


def not_gated(gate: GateConfig) -> list[str]:
    """The thresholds a gate leaves off (null in params), so reports say so instead of "0 >= 0"."""
    return [f.name for f in dataclasses.fields(gate) if f.name.startswith(("max_", "min_"))
            and getattr(gate, f.name) is None]


def held_out(data_dir: str, max_val: int):
    """Held-out instruction pairs (val) and safety prompts written by the instructions stage."""
    import pandas as pd
    from pathlib import Path

    paths = {s: Path(data_dir) / f"{s}.parquet" for s in ("val", "safety")}
    for s, p in paths.items():
        if not p.exists():
            raise FileNotFoundError(f"{p}: held-out {s} split missing (run the instructions stage)")
    return pd.read_parquet(paths["val"]).head(max_val), pd.read_parquet(paths["safety"])


def policy_metrics(model, tok, data_dir: str, ep: GateEvalConfig, max_length: int, kind: str):
    """Perplexity, degenerate output, over-refusal (and refusal, when gated) of one policy;
    also its held-out replies and the report samples (the first held-out prompts, every run)."""
    val, safety = held_out(data_dir, ep.max_val)
    replies_val = generate_replies(model, tok, val.prompt.tolist(), ep.max_new_tokens, ep.repetition_penalty)
    metrics = {
        "perplexity": perplexity(model, tok, val.prompt.tolist(), val.response.tolist(), max_length),
        "over_refusal": refusal_rate(replies_val, ep.refusal_markers),
        **reply_stats(replies_val, ep.gate.short_words),
        "val_pairs": len(val),
    }
    samples = [(f"{kind} / held-out", p, r) for p, r in zip(val.prompt, replies_val)]
    if ep.gate.min_refusal_rate is not None:
        replies_safe = generate_replies(model, tok, safety.prompt.tolist(), ep.max_new_tokens, ep.repetition_penalty)
        metrics.update(refusal_rate=refusal_rate(replies_safe, ep.refusal_markers), safety_prompts=len(safety))
        half = max(1, ep.samples // 2)
        samples = samples[:half] + [(f"{kind} / safety", p, r) for p, r in zip(safety.prompt[:half], replies_safe[:half])]
    return metrics, samples[:ep.samples], replies_val


def generate_replies(model, tok, prompts: list[str], max_new_tokens: int,
                     repetition_penalty: float | None = None) -> list[str]:
    from lmforge.align.common import generate

    return generate(model, tok, prompts, max_new_tokens=max_new_tokens,
                    repetition_penalty=repetition_penalty) if prompts else []


def reply_check(model_dir: str, check, where: str) -> dict:
    """The degenerate-output gate on a saved model folder (the release gate): greedy replies to
    the held-out prompts of ``check`` (a ``ReplyCheck``), their stats, samples and failures;
    ``check.gate.mode: fail`` raises GateError after the caller's metrics can no longer lie."""
    from lmforge.align.common import load_causal_lm, load_tokenizer
    from lmforge.replies import held_out_prompts

    prompts = held_out_prompts(check.data_dir, check.prompts)
    model, tok = load_causal_lm(model_dir, where), load_tokenizer(model_dir)
    replies = generate_replies(model, tok, prompts, check.max_new_tokens, check.repetition_penalty)
    stats = reply_stats(replies, check.gate.short_words)
    failures = reply_failures(stats, check.gate, f"{where}.check.gate")
    return {**stats, **verdict(failures),
            "samples": [{"prompt": p, "reply": r} for p, r in list(zip(prompts, replies))[:4]]}
