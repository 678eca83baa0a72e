"""The global step of curation: dedup across all sources, then write outputs and the funnel.

Why a separate global step: per-shard steps run in parallel (one datatrove task per input
file), but duplicates cross shards and sources, so exact and near dedup must see every kept
document at once. This step reads the per-source work folders written by the shard pipelines,
decides duplicates with ``lmforge.curation.dedup`` (earlier source in ``data.sources`` wins, then
URL, then id) from the per-shard sketches, drops documents that share a 13-gram with an
evaluation item (reason ``decontamination:<eval set>``, lmforge/decontam.py), assigns
the deterministic train/val split by hash of id, and streams ``data/curated/`` and
``data/rejected/`` (``lmforge/curation/publish.py``: it never holds the corpus), both swapped in
atomically (temp folders, then rename) once both are complete, plus the metrics JSON and the
funnel CSV. Corrupt input recorded by the readers is re-raised here as a
``BadInputWarning`` naming each file, and counted in the metrics. Input that cannot be curated
at all fails here, before any output is touched, with a ``BadInputError`` naming source, file
and column: a file without the text column, or a source whose files yield no documents (a
single empty file among others is only a warning).
"""
from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

from datatrove.pipeline.base import PipelineStep

from lmforge.curation.curate_config import DataConfig
from lmforge.curation.publish import (CURATED_COLUMNS, REJECTED_COLUMNS, ChunkedParquet, Tally, decide_duplicates,
                                  publish_kept, publish_task_rejects, split_of)
from lmforge.curation.readers import BadInputError
from lmforge.io import atomic_dir, write_csv, write_json

__all__ = ["BadInputWarning", "CURATED_COLUMNS", "REJECTED_COLUMNS", "FinalizeStep", "finalize", "split_of"]

FUNNEL_STEPS = ("read", "extract", "url_filter", "language", "gopher_repetition", "gopher_quality",
                "c4_quality", "fineweb_quality", "exact_dedup", "near_dedup", "review", "decontamination")


class BadInputWarning(UserWarning):
    """Input that was counted and skipped (truncated/corrupt shard or record)."""


def read_drop_labels(path: str | None) -> set[str]:
    """Ids whose latest review label is ``drop`` (harvest keeps only the latest per id)."""
    if not path or not Path(path).exists():
        return set()
    import pyarrow.parquet as pq

    rows = pq.read_table(path, columns=["id", "label"]).to_pylist()
    latest = {r["id"]: r["label"] for r in rows}
    return {i for i, label in latest.items() if label == "drop"}


def decontamination_index(cfg: DataConfig):
    """The eval items' n-gram index, or None when decontamination is off."""
    from lmforge.decontam import load_index

    d = cfg.decontamination
    return load_index(d.eval_data, d.ngram, d.min_words) if d.enabled else None


def _stat_total(v) -> float:
    return v if isinstance(v, (int, float)) else v.get("total", 0)


def read_step_stats(logs: Path) -> dict[str, Counter]:
    """Summed counters per step name from datatrove's per-task ``stats/*.json``."""
    out: dict[str, Counter] = {}
    for f in sorted((logs / "stats").glob("*.json")):
        for step in json.loads(f.read_text()):
            name = step["name"].split(": ", 1)[-1]
            c = out.setdefault(name, Counter())
            for k, v in step["stats"].items():
                c[k] += _stat_total(v)
    return out


def read_problems(work: Path, source: str) -> list[dict]:
    """What the readers of one source recorded: corrupt files and records, empty files, ..."""
    return [json.loads(line) for pf in sorted((work / source / "problems").glob("*.jsonl"))
            for line in pf.read_text().splitlines() if line.strip()]


def _listing(items: list[str], limit: int = 5) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def check_inputs(cfg: DataConfig, stats: dict[str, dict], problems: dict[str, list[dict]]) -> None:
    """Fail on a file without the text column, or a source whose files yield no documents."""
    for s in cfg.sources:
        missing = [f"{p['file']}: {p['error']}" for p in problems[s.name] if p["kind"] == "missing_column"]
        if missing:
            raise BadInputError(f"data.sources[{s.name}]: {_listing(missing)}")
        if not stats[s.name].get("read", Counter()).get("documents"):
            files = sorted({f"{p['file']} ({p['kind'].replace('_', ' ')})" for p in problems[s.name]})
            raise BadInputError(f"data.sources[{s.name}]: no documents in {_listing(files) or s.path}")


def _source_funnel(stats: dict[str, Counter]) -> dict[str, dict]:
    """in/kept/dropped-by-reason per per-shard step of one source (missing steps pass through)."""
    funnel, n = {}, int(stats.get("read", Counter()).get("documents", 0))
    for step in FUNNEL_STEPS[:-2]:
        c = stats.get(step)
        if c is None:
            funnel[step] = {"in": n, "kept": n, "dropped": {}}
            continue
        dropped = {k[len("dropped_"):]: int(v) for k, v in c.items() if k.startswith("dropped_")}
        kept = int(c.get("forwarded", 0))
        funnel[step] = {"in": n, "kept": kept, "dropped": dropped}
        n = kept
    return funnel


def finalize(cfg: DataConfig, work: Path, curated_dir: Path, rejected_dir: Path,
             metrics_path: Path, funnel_path: Path) -> dict:
    from lmforge.decontam import report

    stats = {s.name: read_step_stats(work / s.name / "logs") for s in cfg.sources}
    problems = {s.name: read_problems(work, s.name) for s in cfg.sources}
    check_inputs(cfg, stats, problems)
    decisions, dstats = decide_duplicates(cfg, work)
    drop, index, tally = read_drop_labels(cfg.review_labels), decontamination_index(cfg), Tally()
    with atomic_dir(curated_dir) as cur, atomic_dir(rejected_dir) as rej:
        for s in cfg.sources:
            curated = ChunkedParquet(cur, s.name, CURATED_COLUMNS, cfg.rows_per_shard, always=True)
            rejected = ChunkedParquet(rej, f"{s.name}-global", REJECTED_COLUMNS, cfg.rows_per_shard)
            publish_kept(cfg, work, s.name, decisions, drop, index, curated, rejected, tally)
            curated.close()
            rejected.close()
            publish_task_rejects(cfg, work, s.name, rej, tally)

    metrics = build_metrics(cfg, stats, problems, tally, dstats)
    metrics["decontamination"] = ({"enabled": True, **report(index, tally.decont_dropped, tally.decont_checked)}
                                  if index is not None else {"enabled": False})
    write_json(metrics_path, metrics)
    write_csv(funnel_path, [{"step": k, "documents": v} for k, v in metrics["funnel"].items()])
    return metrics


def build_metrics(cfg: DataConfig, stats: dict[str, dict], by_source: dict[str, list[dict]],
                  tally: Tally, dstats: dict) -> dict:
    steps: dict[str, dict] = {}
    reader, pii = Counter(), Counter()
    problems = [p for s in cfg.sources for p in by_source[s.name]]
    for s in cfg.sources:
        reader.update(stats[s.name].get("read", Counter()))
        pii.update(stats[s.name].get("pii", Counter()))
        for step, f in _source_funnel(stats[s.name]).items():
            agg = steps.setdefault(step, {"in": 0, "kept": 0, "dropped": Counter()})
            agg["in"] += f["in"]
            agg["kept"] += f["kept"]
            agg["dropped"].update(f["dropped"])
    n = steps["fineweb_quality"]["kept"]
    reasons = tally.reasons
    for step in ("exact_dedup", "near_dedup", "review", "decontamination"):
        dropped = Counter({r: c for r, c in reasons.items() if r and r.split(":")[0] == step})
        if step == "near_dedup" and reasons.get("duplicate_id"):
            dropped["duplicate_id"] = reasons["duplicate_id"]
        steps[step] = {"in": n, "kept": n - sum(dropped.values()), "dropped": dropped}
        n = steps[step]["kept"]
    for p in problems:
        warnings.warn(f"{p['file']}: {p['kind'].replace('_', ' ')}"
                      f"{'' if p['record'] is None else ' at record ' + str(p['record'])} skipped ({p['error']})",
                      BadInputWarning, stacklevel=2)
    for step in steps.values():
        step["dropped"] = dict(sorted(step["dropped"].items()))
    splits = tally.splits
    return {
        "input": {"files": int(reader.get("input_files", 0)), "documents": int(reader.get("documents", 0)),
                  "corrupt_files": int(reader.get("corrupt_files", 0)),
                  "corrupt_records": int(reader.get("corrupt_records", 0)),
                  "skipped_records": int(reader.get("skipped_records", 0)),
                  "empty_files": int(reader.get("empty_files", 0)),
                  "too_large": int(reader.get("dropped_too_large", 0)),
                  "bad_files": sorted({p["file"] for p in problems})},
        "steps": steps,
        "funnel": {k: steps[k]["kept"] for k in FUNNEL_STEPS},
        "curated": {"documents": tally.curated, "train": splits.get("train", 0), "val": splits.get("val", 0),
                    "characters": tally.characters, "by_source": dict(sorted(tally.by_source.items())),
                    "by_language": dict(sorted(tally.by_language.items()))},
        "rejected": {"documents": tally.rejected, "by_reason": dict(sorted(_by_step(reasons).items()))},
        "pii": {"emails_redacted": int(pii.get("emails_redacted", 0)),
                "ips_redacted": int(pii.get("ips_redacted", 0))},
        "dedup": dstats,
    }


def _by_step(reasons: Counter) -> Counter:
    out = Counter()
    for r, n in reasons.items():
        out[(r or "").split(":")[0]] += n
    return out


class FinalizeStep(PipelineStep):
    """``finalize`` as a datatrove step, so a Slurm job can run it after the shard jobs."""

    type = "🫂 - DEDUP"
    name = "finalize"

    def __init__(self, cfg: DataConfig, work: str, curated: str, rejected: str, metrics: str, funnel: str):
        super().__init__()
        self.cfg, self.paths = cfg, (work, curated, rejected, metrics, funnel)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if data:
            yield from data
        finalize(self.cfg, *map(Path, self.paths))
