"""The global step of curation: dedup across all sources, then write outputs and the funnel.

Why a separate global step: per-shard steps run in parallel (one datatrove task per input
file), but duplicates cross shards and sources, so exact and near dedup must see every kept
document at once. This step reads the per-source work folders written by the shard pipelines,
decides duplicates with ``lmforge.data.dedup`` (earlier source in ``data.sources`` wins, then
URL, then id), drops documents that share a 13-gram with an evaluation item (reason
``decontamination:<eval set>``, lmforge/evals/decontam.py), assigns the deterministic
train/val split by hash of id, and writes
``data/curated/`` and ``data/rejected/`` atomically (temp folder, then rename), plus the
metrics JSON and the funnel CSV. Corrupt input recorded by the readers is re-raised here as a
``BadInputWarning`` naming each file, and counted in the metrics. Input that cannot be curated
at all fails here, before any output is touched, with a ``BadInputError`` naming source, file
and column: a file without the text column, or a source whose files yield no documents (a
single empty file among others is only a warning).
"""
from __future__ import annotations

import hashlib
import json
import warnings
from collections import Counter
from pathlib import Path

from datatrove.pipeline.base import PipelineStep

from lmforge.data.curate_config import DataConfig
from lmforge.data.dedup import Deduplicator
from lmforge.data.readers import BadInputError
from lmforge.io import atomic_dir, write_csv, write_json

FUNNEL_STEPS = ("read", "extract", "url_filter", "language", "gopher_repetition", "gopher_quality",
                "c4_quality", "fineweb_quality", "exact_dedup", "near_dedup", "review", "decontamination")
CURATED_COLUMNS = ("id", "url", "source", "language", "language_score", "text", "split")
REJECTED_COLUMNS = (*CURATED_COLUMNS, "reason", "duplicate_of")


class BadInputWarning(UserWarning):
    """Input that was counted and skipped (truncated/corrupt shard or record)."""


def split_of(doc_id: str, val_fraction: float) -> str:
    h = int.from_bytes(hashlib.sha1(doc_id.encode()).digest()[:8], "big") / 2**64
    return "val" if h < val_fraction else "train"


def read_drop_labels(path: str | None) -> set[str]:
    """Ids whose latest review label is ``drop`` (harvest keeps only the latest per id)."""
    if not path or not Path(path).exists():
        return set()
    import pyarrow.parquet as pq

    rows = pq.read_table(path, columns=["id", "label"]).to_pylist()
    latest = {r["id"]: r["label"] for r in rows}
    return {i for i, label in latest.items() if label == "drop"}


def apply_review_labels(curated: list[dict], rejected: list[dict], drop: set[str]) -> list[dict]:
    """Move curated documents a reviewer dropped to ``rejected`` (reason ``review``)."""
    kept = []
    for row in curated:
        if row["id"] in drop:
            row.update(reason="review", duplicate_of=None)
            rejected.append(row)
        else:
            kept.append(row)
    return kept


def decontaminate(curated: list[dict], rejected: list[dict], cfg: DataConfig) -> tuple[list[dict], dict]:
    """Move curated documents sharing an n-gram with an eval item to ``rejected``
    (reason ``decontamination:<eval set>``); return the rest and the per-set report."""
    from lmforge.evals.decontam import load_index, report, split_contaminated

    d = cfg.decontamination
    if not d.enabled:
        return curated, {"enabled": False}
    index = load_index(d.eval_data, d.ngram, d.min_words)
    kept, dropped = split_contaminated(curated, index, lambda r: r["text"])
    for row, eval_set in dropped:
        row.update(reason=f"decontamination:{eval_set}", duplicate_of=None)
        rejected.append(row)
    return kept, {"enabled": True, **report(index, dropped, len(curated))}


def _read_parquets(folder: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lmforge.data.blocks import work_schema

    files = sorted(folder.rglob("*.parquet")) if folder.exists() else []
    tables = [pq.read_table(f, schema=work_schema()) for f in files]
    return pa.concat_tables(tables) if tables else work_schema().empty_table()


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
    import pyarrow as pa
    import pyarrow.parquet as pq

    stats = {s.name: read_step_stats(work / s.name / "logs") for s in cfg.sources}
    problems = {s.name: read_problems(work, s.name) for s in cfg.sources}
    check_inputs(cfg, stats, problems)
    order = {s.name: i for i, s in enumerate(cfg.sources)}
    kept = pa.concat_tables([_read_parquets(work / s.name / "kept") for s in cfg.sources]).to_pylist()
    kept.sort(key=lambda r: (order[r["source"]], r["url"] or "", r["id"]))
    rejected = [_read_parquets(work / s.name / "rejected").to_pylist() for s in cfg.sources]
    rejected = [r for rows in rejected for r in rows]

    dd, seen, curated = _deduplicator(cfg, work), set(), []
    for row in kept:
        if row["id"] in seen:
            row.update(reason="duplicate_id", duplicate_of=row["id"])
            rejected.append(row)
            continue
        seen.add(row["id"])
        d = dd.add(row["id"], row["text"])
        if d.reason:
            row.update(reason=d.reason, duplicate_of=d.duplicate_of)
            rejected.append(row)
        else:
            curated.append(row)
    curated = apply_review_labels(curated, rejected, read_drop_labels(cfg.review_labels))
    curated, decont = decontaminate(curated, rejected, cfg)
    for row in curated + rejected:
        row["split"] = split_of(row["id"], cfg.val_fraction)

    with atomic_dir(curated_dir) as tmp:
        for s in cfg.sources:
            rows = [r for r in curated if r["source"] == s.name]
            for i in range(0, max(len(rows), 1), cfg.rows_per_shard):
                chunk = rows[i:i + cfg.rows_per_shard]
                table = pa.Table.from_pylist([{k: r[k] for k in CURATED_COLUMNS} for r in chunk],
                                             schema=_schema(CURATED_COLUMNS))
                pq.write_table(table, tmp / f"{s.name}-{i // cfg.rows_per_shard:05d}.parquet", compression="zstd")
    with atomic_dir(rejected_dir) as tmp:
        for s in cfg.sources:
            rows = [{k: r.get(k) for k in REJECTED_COLUMNS} for r in rejected if r["source"] == s.name]
            rows.sort(key=lambda r: (r["reason"] or "", r["id"]))
            pq.write_table(pa.Table.from_pylist(rows, schema=_schema(REJECTED_COLUMNS)),
                           tmp / f"{s.name}.parquet", compression="zstd")

    metrics = build_metrics(cfg, stats, problems, curated, rejected, dd.stats)
    metrics["decontamination"] = decont
    write_json(metrics_path, metrics)
    write_csv(funnel_path, [{"step": k, "documents": v} for k, v in metrics["funnel"].items()])
    return metrics


def _deduplicator(cfg: DataConfig, work: Path):
    """datasketch decides here; datatrove's stages have decided already (decisions.parquet)."""
    if cfg.dedup.engine == "datatrove":
        from lmforge.data.dedup_datatrove import Decisions

        return Decisions(work)
    return Deduplicator(cfg.dedup)


def _schema(columns):
    import pyarrow as pa

    types = {"language_score": pa.float64()}
    return pa.schema([(c, types.get(c, pa.string())) for c in columns])


def build_metrics(cfg: DataConfig, stats: dict[str, dict], by_source: dict[str, list[dict]],
                  curated: list[dict], rejected: list[dict], dstats: dict) -> dict:
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
    reasons = Counter(r["reason"] for r in rejected)
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
    splits = Counter(r["split"] for r in curated)
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
        "curated": {"documents": len(curated), "train": splits.get("train", 0), "val": splits.get("val", 0),
                    "characters": sum(len(r["text"]) for r in curated),
                    "by_source": dict(sorted(Counter(r["source"] for r in curated).items())),
                    "by_language": dict(sorted(Counter(r["language"] for r in curated).items()))},
        "rejected": {"documents": len(rejected), "by_reason": dict(sorted(
            Counter((r["reason"] or "").split(":")[0] for r in rejected).items()))},
        "pii": {"emails_redacted": int(pii.get("emails_redacted", 0)),
                "ips_redacted": int(pii.get("ips_redacted", 0))},
        "dedup": dstats,
    }


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
