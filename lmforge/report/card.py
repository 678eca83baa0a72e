"""The report card: what one pipeline run produced, on one page, for people.

``dvc metrics show`` lists numbers and ``dvc plots show`` draws curves; this card
puts the run's story in one place: what the data funnel kept and dropped (and why),
tokens per source and language and the tokenizer's bytes per token, how pretraining
went (loss, perplexity, tokens/s, MFU), each post-training stage with its gate
verdict, degenerate-output shares and DPO's wins/ties/losses, what each model says to
the same held-out prompts, lm-eval accuracies beside their standard error and chance
level, how the server performed at a fixed output length, the environment (processor,
threads, library versions) and the lineage (git commit, dvc.lock md5s).

It writes ``reports/summary.md`` and a self-contained ``reports/summary.html`` whose
charts are inline SVG (``lmforge.report.svg``): no script, no network. It reads
timing files, so the ``report`` stage lists them as deps and its outputs are
``cache: false``; the page is a pure function of those files, the lock and the
commit (no clock, no host name), so the same inputs give the same bytes.

Wall time per stage: DVC records none, so every stage that DVC runs leaves its own in
``metrics/timing/stages/<stage>.json`` (``lmforge.stage``). The card reads whatever is
there, in dvc.yaml's stage order, as it reads dvc.lock: not as deps, since the report
stage writes one of those files itself. A stage that did not rerun keeps the time of its
last run.
"""
from __future__ import annotations

import csv
import json
import math
from html import escape
from pathlib import Path

import yaml

from lmforge.config import read_yaml
from lmforge.io import write_text
from lmforge.report.env import environment
from lmforge.report.svg import bar_chart, line_chart, num
from lmforge.release.lineage import git_commit, load_lock
from lmforge.stage import STAGE_TIMING_DIR

# the artifacts whose md5 the card pins (when dvc.lock has them)
LINEAGE = ("data/sample", "data/curated", "models/tokenizer", "data/tokens", "models/pretrain/hf",
           "models/sft", "models/reward", "models/dpo", "models/release")


def _json(root: Path, rel: str) -> dict:
    p = root / rel
    return json.loads(p.read_text()) if p.exists() else {}


def _csv(root: Path, rel: str) -> list[dict]:
    p = root / rel
    return list(csv.DictReader(open(p))) if p.exists() else []


def _points(rows: list[dict], x: str, y: str) -> list[tuple[float, float]]:
    out = []
    for r in rows:
        try:
            out.append((float(r[x]), float(r[y])))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return num(v)
    return str(v)


def gather(root: Path, lock_path: Path) -> list[dict]:
    """The card's sections: {title, rows: [(label, value)], charts: [svg]} in reading order."""
    m = {k: _json(root, f"metrics/{k}.json") for k in ("curate", "tokens", "tokenizer", "pretrain", "sft", "reward",
                                                         "dpo", "release", "serve")}
    timing = {k: _json(root, f"metrics/timing/{k}.json") for k in ("pretrain", "serve")}
    cur, tok, pre = m["curate"], m["tokens"], m["pretrain"]
    sections = []

    funnel = [(r["step"], float(r["documents"])) for r in _csv(root, "metrics/curate_funnel.csv")]
    reasons = sorted((cur.get("rejected") or {}).get("by_reason", {}).items(), key=lambda kv: (-kv[1], kv[0]))
    sections.append({"title": "Data", "rows": [
        ("input documents", (cur.get("input") or {}).get("documents")),
        ("curated documents", (cur.get("curated") or {}).get("documents")),
        ("rejected documents", (cur.get("rejected") or {}).get("documents")),
        *[(f"rejected: {r}", n) for r, n in reasons]],
        "charts": [bar_chart("Curation funnel (documents left after each step)", funnel),
                   bar_chart("Rejected documents by reason", [(r, float(n)) for r, n in reasons])]})

    by = [(k, float(v)) for k, v in sorted((tok.get("tokens_per_source") or {}).items())]
    lang = [(k, float(v)) for k, v in sorted((tok.get("tokens_per_language") or {}).items())]
    sections.append({"title": "Tokens", "rows": [("tokens", tok.get("tokens")), ("documents", tok.get("documents")),
                                                 ("packing efficiency", tok.get("packing_efficiency")),
                                                 ("vocabulary", m["tokenizer"].get("vocab_size")),
                                                 ("bytes per token (held-out)", m["tokenizer"].get("val_bytes_per_token"))],
                     "charts": [bar_chart("Tokens per source", by), bar_chart("Tokens per language", lang)]})

    steps = _csv(root, "metrics/pretrain_steps.csv")
    evals = _csv(root, "metrics/pretrain_eval.csv")
    speed = _csv(root, "metrics/timing/pretrain_steps.csv")
    sections.append({"title": "Pretraining", "rows": [
        ("parameters", pre.get("params")), ("steps", pre.get("steps")), ("tokens", pre.get("tokens")),
        ("held-out loss", f"{_fmt(pre.get('init_val_loss'))} -> {_fmt(pre.get('val_loss'))}"),
        ("held-out perplexity", f"{_fmt(pre.get('init_val_ppl'))} -> {_fmt(pre.get('val_ppl'))}"),
        ("tokens/s", timing["pretrain"].get("tokens_per_s")), ("MFU (estimate: peak from a timed matmul)" if str(timing["pretrain"].get("device", "")).startswith("cpu")
         else "MFU", timing["pretrain"].get("mfu")),
        ("device", timing["pretrain"].get("device"))],
        "charts": [line_chart("Pretraining loss", {"train": _points(steps, "step", "loss"),
                                                   "held-out": _points(evals, "step", "val_loss")}),
                   line_chart("Held-out perplexity", {"val_ppl": _points(evals, "step", "val_ppl")}, log_y=True),
                   line_chart("Throughput (tokens/s)", {"tokens/s": _points(speed, "step", "tokens_per_s")})]})

    sections += _post_training(root, m)
    sections.append(_samples(m))
    sections.append(_evals(root))
    sections.append(_serving(timing["serve"], m["serve"]))
    sections.append(_wall_times(root, lock_path))
    params_file = root / "params.yaml"
    params = read_yaml(params_file) if params_file.exists() else {}
    sections.append({"title": "Environment", "rows": environment(params), "charts": []})

    commit, _dirty = git_commit(root)
    outs = {o["path"].rstrip("/"): o.get("md5") for st in load_lock(lock_path).values()
            for o in (st.get("outs") or []) + (st.get("deps") or [])}
    sections.append({"title": "Lineage", "rows": [("git commit", commit)] +
                     [(p, outs[p]) for p in LINEAGE if p in outs], "charts": []})
    return sections


def _post_training(root: Path, m: dict) -> list[dict]:
    """SFT, reward and DPO: headline figures, gate verdict, training curve (DPO: and its KL)."""
    sections = []
    replies = ("empty_share", "short_share", "repetition", "mean_words")
    for stage, keys in (("sft", ("train_loss", "perplexity", *replies, "over_refusal")),
                        ("reward", ("accuracy_before", "accuracy", "margin", "train_loss")),
                        ("dpo", ("kl_token", "reward_margin", "preference_accuracy", "perplexity", *replies,
                                 "over_refusal"))):
        s = m[stage]
        rows = [(k, s.get(k)) for k in keys if k in s]
        if stage == "dpo" and "wins" in s:
            rows.insert(0, ("against SFT (reward model): wins / ties / losses",
                            f"{s['wins']} / {s['ties']} / {s['losses']}"))
        if stage != "reward" and s:
            rows.append(("refusal rate (safety prompts)", s["refusal_rate"] if "refusal_rate" in s else
                         "not measured (min_refusal_rate: null; this configuration does not learn refusals)"))
        if "gate_passed" in s:
            rows.append(("gate", "PASSED" if s["gate_passed"] else "FAILED: " + "; ".join(s.get("gate_failures", []))))
        curve = _csv(root, f"metrics/{stage}_loss.csv")
        series = {"loss": _points(curve, "step", "loss")}
        if stage == "dpo":
            series["reward margin"] = _points(curve, "step", "margin")
        charts = [line_chart(f"{stage} training curve", series)]
        kl = _points(curve, "step", "kl")
        if any(math.isfinite(y) for _, y in kl):
            charts.append(line_chart("dpo token KL from the reference (held-out probe)", {"KL": kl}))
        sections.append({"title": f"Post-training: {stage}", "rows": rows, "charts": charts})
    return sections


def _samples(m: dict) -> dict:
    """What each model says to the same first held-out prompts (greedy, no forcing)."""
    rows = []
    for where, found in (("sft", m["sft"].get("samples")), ("dpo", m["dpo"].get("samples")),
                         ("release", (m["release"].get("replies") or {}).get("samples")),
                         ("served", (m["serve"].get("replies") or {}).get("samples"))):
        for s in (found or [])[:3]:
            if "safety" not in s.get("kind", ""):
                rows.append((f"{where}: {s['prompt']}", s["reply"] or "(empty reply)"))
    return {"title": "Samples (greedy replies to the first held-out prompts)", "rows": rows, "charts": []}


def _score(row: dict, k: str) -> str:
    """One lm-eval score; an accuracy as value ± standard error (chance level)."""
    if k not in row:
        return "-"
    text = _fmt(row[k])
    if k == "acc" and f"{k}_stderr" in row:
        text += f" ± {_fmt(row[f'{k}_stderr'])}"
    if k == "acc" and "chance" in row:
        text += f" (chance {_fmt(row['chance'])})"
    return text


def _evals(root: Path) -> dict:
    """lm-eval scores of the three models side by side (metrics/eval_<model>.json)."""
    scores = {m: (_json(root, f"metrics/eval_{m}.json").get("tasks") or {}) for m in ("pretrain", "sft", "dpo")}
    keys = sorted({(t, k) for tasks in scores.values() for t, v in tasks.items() for k in v
                   if k in ("acc", "bits_per_byte", "refusal_rate")})
    rows = [(f"{t} {k}", " / ".join(_score(scores[m].get(t) or {}, k) for m in scores)) for t, k in keys]
    items = sorted({(t, int(v["n"])) for tasks in scores.values() for t, v in tasks.items() if "n" in v})
    rows += [(f"{t} items scored", n) for t, n in items]
    return {"title": "Evaluations (lm-eval: pretrain / sft / dpo; accuracy ± standard error, chance level)",
            "rows": rows, "charts": []}


def _serving(serve: dict, smoke: dict) -> dict:
    loads = sorted(serve.items())
    gate = (smoke.get("replies") or {})
    verdict = None if not gate else ("PASSED" if gate.get("gate_passed") else
                                      "FAILED: " + "; ".join(gate.get("gate_failures", [])))
    penalty = gate.get("repetition_penalty")
    decoding = None if not gate else "greedy, " + (f"repetition penalty {penalty:g}" if penalty else "no penalty")
    return {"title": "Serving (load test of lmforge serve at a fixed output length, end token ignored)", "rows": [
        ("smoke gate (held-out replies)", verdict), ("smoke gate decoding (the server's default)", decoding),
        *[(f"{k}: {f}", v.get(f)) for k, v in loads for f in (
            "max_new_tokens", "tokens_per_s", "ttft_p50_s", "ttft_p95_s", "itl_p50_s", "itl_p95_s",
            "latency_p50_s", "latency_p95_s", "requests_per_s")]],
        "charts": [bar_chart("Output tokens/s by concurrency", [(k, float(v.get("tokens_per_s", 0))) for k, v in loads]),
                   bar_chart("p95 latency (s) by concurrency", [(k, float(v.get("latency_p95_s", 0))) for k, v in loads])]}


def _wall_times(root: Path, lock_path: Path) -> dict:
    """Seconds of each stage's last run under DVC, in dvc.yaml's order, then the rest by name."""
    found = {p.stem: _json(root, str(p.relative_to(root))).get("seconds")
             for p in sorted((root / STAGE_TIMING_DIR).glob("*.json"))}
    graph = lock_path.with_name("dvc.yaml")
    stages = list((yaml.safe_load(graph.read_text()) or {}).get("stages") or {}) if graph.exists() else []
    order = [s for s in stages if s in found] + sorted(set(found) - set(stages))
    times = [(s, float(found[s])) for s in order if isinstance(found[s], (int, float))]
    rows = [(f"{s} (s)", round(t, 1)) for s, t in times]
    if times:
        rows.append(("all stages (s)", round(sum(t for _, t in times), 1)))
    return {"title": "Wall time per stage (last run under DVC)", "rows": rows,
            "charts": [bar_chart("Wall time per stage (s)", times)] if times else []}


def render_md(sections: list[dict]) -> str:
    lines = ["# lmforge report card", "", "Charts: reports/summary.html.", ""]
    for s in sections:
        lines += [f"## {s['title']}", "", "| | |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in s["rows"] if v is not None]
        lines.append("")
    return "\n".join(lines)


STYLE = ("body{font-family:sans-serif;max-width:1180px;margin:1em auto;color:#222}"
         "section{border-top:1px solid #ccc;margin-top:1em}table{border-collapse:collapse;font-size:13px}"
         "td{padding:2px 10px;border-bottom:1px solid #eee}.charts{display:flex;flex-wrap:wrap;gap:8px}")


def render_html(sections: list[dict]) -> str:
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>lmforge report card</title>",
             f"<style>{STYLE}</style></head><body><h1>lmforge report card</h1>"]
    for s in sections:
        rows = "".join(f"<tr><td>{escape(str(k))}</td><td>{escape(_fmt(v))}</td></tr>"
                       for k, v in s["rows"] if v is not None)
        parts.append(f"<section><h2>{escape(s['title'])}</h2><table>{rows}</table>"
                     f"<div class='charts'>{''.join(s['charts'])}</div></section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_card(root: str | Path = ".", out_dir: str | Path = "reports", lock: str | Path = "dvc.lock") -> int:
    """Write summary.md and summary.html; return the number of charts."""
    root = Path(root)
    sections = gather(root, root / lock)
    out = root / out_dir
    write_text(out / "summary.md", render_md(sections))
    write_text(out / "summary.html", render_html(sections))
    return sum(len(s["charts"]) for s in sections)
