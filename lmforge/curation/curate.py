"""Curation on datatrove: crawl shards -> curated and rejected Parquet, fully offline.

Each source gets its own datatrove pipeline (so it can carry its own filter thresholds); one
executor runs one task per input file, across all sources, on ``data.workers`` local workers
(or as one Slurm array):

    SafeReader (warc | jsonl | parquet)
      -> Resiliparse or Trafilatura (HTML sources only; lmforge/curation/extract.py) -> URLFilter -> py3langid language filter
      -> Gopher repetition -> Gopher quality -> C4 quality -> FineWeb quality
      -> PII redaction (emails, IPs) -> dedup sketches -> work/<source>/kept/*.parquet

Every filter has an exclusion writer, so each dropped document lands in
``work/<source>/rejected/<step>/`` with ``reason = "<step>:<filter's reason>"``. A task then
sorts its kept documents and their dedup sketches by dedup priority
(``lmforge/curation/signatures.py``), and its outputs are cached by shard content and settings
(``lmforge/curation/shard_cache.py``): a shard whose results are cached is not run again. Then the
global ``finalize`` step (exact + datasketch MinHash-LSH near dedup across all sources, from
the sketches) streams ``data/curated/``, ``data/rejected/``, the metrics JSON and the funnel CSV.

Locally everything happens in a temporary work folder beside the outputs (``.curate-work-*``),
locked (``flock``) while its run lives and removed afterwards; a folder left by a killed run
(its lock no longer held) is removed by the next run. Outputs are swapped in atomically.
With ``executor: slurm`` the same pipelines are submitted with datatrove's
``SlurmPipelineExecutor`` (the shard array, the dedup stages, then a finalize job), the stage
waits for them (``slurm_wait``), and the work folder persists at ``data/.curate_work``
(submission, the default partition and sbatch's refusals: ``curate_slurm``).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from datatrove.pipeline.base import PipelineStep
from datatrove.utils.logging import logger

from lmforge.curation.curate_config import DataConfig, SourceSettings, filter_kwargs
from lmforge.curation.curate_slurm import slurm_executors, submit
from lmforge.curation.progress import Progress
from lmforge.curation.readers import resolve_files
from lmforge.curation.shard_cache import ShardCache, transient_drops
from lmforge.curation.signatures import SignatureWriter, sort_task_outputs
from lmforge.curation.slurm_wait import wait_for_jobs
from lmforge.stage import InputError


@dataclass
class CurateOutputs:
    curated: Path = Path("data/curated")
    rejected: Path = Path("data/rejected")
    metrics: Path = Path("metrics/curate.json")
    funnel: Path = Path("metrics/curate_funnel.csv")


@dataclass
class SourcePlan:
    settings: SourceSettings
    root: str
    files: list[str]


def plan(cfg: DataConfig) -> list[SourcePlan]:
    """Resolve every source's files up front: a path matching nothing fails before any work."""
    return [SourcePlan(cfg.for_source(s), *resolve_files(s.name, s.path, s.format)) for s in cfg.sources]


def build_pipeline(cfg: DataConfig, sp: SourcePlan, work: Path) -> list:
    from lmforge.curation.filters.language import LanguageIDFilter
    from lmforge.curation.filters.quality import (LangC4Quality, LangFineWebQuality, LangGopherQuality,
                                                  LangGopherRepetition)
    from lmforge.curation.readers import SafeReader
    from lmforge.curation.redact import CountingPII
    from lmforge.curation.work import WorkWriter

    st, src = sp.settings, sp.settings.source
    base = work / src.name

    def rejects(step: str):
        return WorkWriter(str(base / "rejected" / step), step=step)

    steps = [SafeReader(src.format, sp.root, sp.files, src.name, problems_folder=str(base / "problems"),
                        max_doc_bytes=cfg.max_doc_bytes, exclusion_writer=rejects("read"))]
    if src.format == "warc":
        from lmforge.curation.extract import make_extractor

        steps.append(make_extractor(st.extract, rejects("extract")))
    if st.url_filter.enabled:
        u = st.url_filter
        from lmforge.curation.filters.url import OfflineURLFilter

        steps.append(OfflineURLFilter(
            soft_word_threshold=u.soft_word_threshold, extra_domains=u.extra_domains or None,
            extra_urls=u.extra_urls or None, banned_words=u.banned_words or None,
            use_integrated_lists=u.use_integrated_lists, exclusion_writer=rejects("url_filter")))
    lang = st.language  # always labels the language; only filters when enabled
    steps.append(LanguageIDFilter(allowed=lang.allowed if lang.enabled else None, min_score=lang.min_score,
                                  exclusion_writer=rejects("language")))
    for key, cls in (("gopher_repetition", LangGopherRepetition), ("gopher_quality", LangGopherQuality),
                     ("c4_quality", LangC4Quality), ("fineweb_quality", LangFineWebQuality)):
        p = getattr(st, key)
        if p.enabled:
            steps.append(cls(exclusion_writer=rejects(key), **filter_kwargs(p)))
    steps.append(CountingPII(remove_emails=cfg.pii.emails, remove_ips=cfg.pii.ips,
                             only_remove_public_ips=cfg.pii.only_public_ips))
    steps.append(SignatureWriter(str(base / "signatures"), cfg.dedup))
    steps.append(WorkWriter(str(base / "kept")))
    return steps


@dataclass
class Shard:
    """One input file of a source: its place in the source (``rank`` of ``n_files``) and cache key."""
    source: str
    rank: int
    n_files: int
    file: str            # where the readers name it (problems, warnings)
    key: str | None = None


def shards(plans: list[SourcePlan], work: Path, cache: ShardCache | None) -> tuple[list[Shard], list[Shard]]:
    """(shards to run, shards restored from the cache into ``work``)."""
    from datatrove.io import get_datafolder

    todo, cached = [], []
    for sp in plans:
        name, folder = sp.settings.source.name, get_datafolder(sp.root)
        for i, rel in enumerate(sp.files):
            sh = Shard(name, i, len(sp.files), folder.resolve_paths(rel))
            if cache is not None:
                sh.key = cache.key(sp.settings, folder, rel)
                if cache.restore(name, sh.key, work / name, i, sh.file):
                    cached.append(sh)
                    continue
            todo.append(sh)
    return todo, cached


class ShardTask(PipelineStep):
    """One datatrove task = one input file: runs that file's source pipeline, saves its stats.

    All sources share one executor (one process pool, one Slurm array), so worker processes
    are reused across sources and per-process caches (URL block lists) load once per worker.
    """

    type = "🗂 - SHARD"
    name = "shard"

    def __init__(self, todo: list[Shard], pipelines: dict[str, list], work: str, cache: ShardCache | None):
        super().__init__()
        self.tasks, self.pipelines, self.work, self.cache = todo, pipelines, work, cache

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from collections import deque

        from datatrove.io import get_datafolder
        from datatrove.utils.stats import PipelineStats

        sh = self.tasks[rank]
        steps = self.pipelines[sh.source]
        for step in steps:
            data = step(data, sh.rank, sh.n_files)
        deque(data, maxlen=0)
        sort_task_outputs(Path(self.work) / sh.source, sh.rank)
        with get_datafolder(f"{self.work}/{sh.source}/logs").open(f"stats/{sh.rank:05d}.json", "w") as f:
            PipelineStats(steps).save_to_disk(f)
        if self.cache is not None and sh.key and not transient_drops(Path(self.work) / sh.source, sh.rank):
            self.cache.store(sh.source, sh.key, Path(self.work) / sh.source, sh.rank)
        self.stat_update(f"files_{sh.source}")
        yield from ()


def build_executors(cfg: DataConfig, plans: list[SourcePlan], work: Path, outputs: CurateOutputs,
                    executor: str | None = None, todo: list[Shard] | None = None,
                    cache: ShardCache | None = None) -> list:
    """The shard executor (one task per input file to run, all sources), then datatrove dedup's stages
    (``dedup.engine: datatrove``, over every shard, cached ones included), on the chosen executor;
    with Slurm also a finalize job. ``cache``: the run's shard cache, where finished shards are stored."""
    todo = shards(plans, work, None)[0] if todo is None else todo
    task = ShardTask(todo, {sp.settings.source.name: build_pipeline(cfg, sp, work) for sp in plans}, str(work),
                     cache)
    stages = [("curate-shards", [task], len(todo), work / "logs")] if todo else []
    if cfg.dedup.engine == "datatrove":
        from lmforge.curation.dedup_datatrove import stages as dedup_stages

        every = [(sp.settings.source.name, i, len(sp.files)) for sp in plans for i in range(len(sp.files))]
        stages += [(name, p, n, work / "dedup-logs" / name) for name, p, n in dedup_stages(cfg.dedup, every, str(work))]
    kind = executor or cfg.executor
    if kind == "local":
        from datatrove.executor import LocalPipelineExecutor

        return [LocalPipelineExecutor(p, tasks=n, workers=min(cfg.workers, n), logging_dir=str(logs),
                                      skip_completed=False) for _, p, n, logs in stages]
    if kind == "ray":
        from datatrove.executor.ray import RayPipelineExecutor

        return [RayPipelineExecutor(p, tasks=n, workers=min(cfg.workers, n), logging_dir=str(logs),
                                    skip_completed=False, mem_per_cpu_gb=cfg.slurm.mem_per_cpu_gb)
                for _, p, n, logs in stages]
    return slurm_executors(cfg, stages, work, outputs)


def check_executor(kind: str) -> None:
    """Fail at start, naming it, when the chosen executor cannot run here."""
    import importlib.util

    if kind == "slurm" and shutil.which("sbatch") is None:
        raise InputError("data.executor: slurm, but there is no `sbatch` on PATH")
    if kind == "ray" and importlib.util.find_spec("ray") is None:
        raise InputError("data.executor: ray, but the `ray` package is not installed (pip install ray)")


def run_curate(cfg: DataConfig, outputs: CurateOutputs | None = None, executor: str | None = None) -> dict | None:
    """Run curation. Returns the metrics dict, or None after submitting Slurm jobs when
    ``data.slurm.wait`` is off (the stage then leaves ``dvc commit curate`` to the user).

    The returned dict also says which shards ran and which came from the cache (``shards``);
    that part is not written to the metrics file, which must not depend on earlier runs.
    """
    from lmforge.curation.finalize import finalize

    outputs = outputs or CurateOutputs()
    kind = executor or cfg.executor
    check_executor(kind)
    plans = plan(cfg)
    cache = ShardCache(cfg.cache_dir, cfg) if cfg.cache_dir else None
    if kind == "slurm":
        work = (outputs.curated.parent / ".curate_work").resolve()
        if work.exists():
            shutil.rmtree(work)
        t0 = time.perf_counter()
        todo, cached = shards(plans, work, cache)
        execs = build_executors(cfg, plans, work, outputs, "slurm", todo, cache)
        submit(execs)  # the last launches its dependency chain first
        if not cfg.slurm.wait:
            return None
        with Progress(work, todo, cfg.progress_s):   # the array's shards finish into the shared work folder
            wait_for_jobs(execs, cfg.slurm.poll_s, queue_retry_s=cfg.slurm.queue_retry_s)
        metrics = json.loads(outputs.metrics.read_text())
        metrics["seconds"] = round(time.perf_counter() - t0, 1)
        metrics["shards"] = {"processed": [sh.file for sh in todo], "cached": [sh.file for sh in cached]}
        return metrics
    t0 = time.perf_counter()
    with work_dir(outputs.curated.parent) as work:
        todo, cached = shards(plans, work, cache)
        with Progress(work, todo, cfg.progress_s):
            for ex in build_executors(cfg, plans, work, outputs, kind, todo, cache):
                ex.run()
        metrics = finalize(cfg, work, outputs.curated, outputs.rejected, outputs.metrics, outputs.funnel)
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    metrics["shards"] = {"processed": [sh.file for sh in todo], "cached": [sh.file for sh in cached]}
    return metrics


WORK_PREFIX, LOCK, GRACE_S = ".curate-work-", ".lock", 60.0


@contextlib.contextmanager
def work_dir(parent: Path) -> Iterator[Path]:
    """A fresh work folder in ``parent``, locked while in use, removed afterwards.

    The lock is an ``flock`` on ``<work>/.lock``, held by the run's main process: the kernel
    releases it when that process ends, however it ends (no pid to go stale or be reused), so a
    later run can tell a killed run's folder from a live one and remove it (``remove_stale_work``).
    """
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_work(parent)
    work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=parent))
    fd = os.open(work / LOCK, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
        os.close(fd)


def remove_stale_work(parent: Path) -> list[Path]:
    """Remove the work folders in ``parent`` that no live run holds; return them."""
    stale = [d for d in sorted(parent.glob(WORK_PREFIX + "*")) if d.is_dir() and not _in_use(d)]
    for d in stale:
        shutil.rmtree(d, ignore_errors=True)
        logger.warning(f"removed {d}: work folder of a curate run that no longer runs")
    return stale


def _in_use(work: Path) -> bool:
    try:
        fd = os.open(work / LOCK, os.O_WRONLY)
    except FileNotFoundError:  # a run that has not taken its lock yet, or one from before locks
        return time.time() - work.stat().st_mtime < GRACE_S
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the probe's lock
    return False
