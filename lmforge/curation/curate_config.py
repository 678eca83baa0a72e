"""Typed ``data:`` section of params.yaml for the curate stage.

Why a dataclass per filter: datatrove's filters take plain constructor arguments, so each
dataclass mirrors one filter's thresholds one-to-one and is handed over as ``**kwargs``. A
typo or a wrong type fails at start naming the key (``data.filters.c4_quality.foo``).
Thresholds set to ``null`` switch that rule off. FineWeb-style defaults are harsh on
technical documentation, so any source may override any filter section:
``sources: [{name: pydoc, ..., filters: {c4_quality: {filter_curly_bracket: false}}}]``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal, Optional

from lmforge.config import ParamsError, build, require
from lmforge.decontam import DecontaminationConfig


# Page furniture that Resiliparse's main-content heuristic lets through, named by standard markup
# (HTML5 sectioning elements, ARIA landmark roles) and by the class names the common documentation
# generators give it (DocBook XSL's navheader/navfooter, Sphinx's sidebar and related bar, tables of
# contents, breadcrumbs, permalink anchors). Not ``aside`` or ``.sidebar``: DocBook and docutils put
# content boxes there. docs/LOG.md has what removing them changed.
BOILERPLATE_SELECTORS = ("nav", "footer", "button", "[role=navigation]", "[role=banner]", "[role=contentinfo]",
                         "[role=search]", ".navheader", ".navfooter", ".breadcrumb", ".breadcrumbs", ".toc",
                         ".sphinxsidebar", ".related", ".headerlink")


@dataclass
class ExtractConfig:
    """HTML to text (HTML sources only): ``resiliparse`` or ``trafilatura`` (lmforge/curation/extract.py).

    ``timeout`` and ``favour_precision`` are Trafilatura's; ``main_content`` (its boilerplate
    heuristic) and ``skip_elements`` (CSS selectors of elements never extracted) are Resiliparse's."""
    engine: Literal["trafilatura", "resiliparse"] = "resiliparse"
    timeout: float = 5.0
    favour_precision: bool = True
    main_content: bool = True
    skip_elements: list[str] = field(default_factory=lambda: list(BOILERPLATE_SELECTORS))

    def __post_init__(self):
        require(self.timeout > 0, f"data.extract.timeout must be > 0, got {self.timeout}")
        require(isinstance(self.skip_elements, list) and all(isinstance(x, str) and x.strip() for x in self.skip_elements),
                f"data.extract.skip_elements must be a list of CSS selectors, got {self.skip_elements!r}")
        if self.engine == "resiliparse" and self.skip_elements:
            from resiliparse.extract.html2text import extract_plain_text

            for sel in self.skip_elements:
                try:
                    extract_plain_text("<p>x</p>", skip_elements=[sel])
                except ValueError as e:  # resiliparse's CSSParserException
                    require(False, f"data.extract.skip_elements: {sel!r} is not a CSS selector ({e})")


@dataclass
class URLFilterConfig:
    """datatrove URLFilter with its shipped block lists; the TLD list is the bundled snapshot."""
    enabled: bool = True
    use_integrated_lists: bool = True
    soft_word_threshold: int = 2
    extra_domains: list[str] = field(default_factory=list)
    extra_urls: list[str] = field(default_factory=list)
    banned_words: list[str] = field(default_factory=list)


@dataclass
class LanguageConfig:
    """py3langid (model ships with the package): keep ``allowed`` languages at >= min_score."""
    enabled: bool = True
    allowed: list[str] = field(default_factory=lambda: ["en"])
    min_score: float = 0.65

    def __post_init__(self):
        require(0.0 <= self.min_score <= 1.0, f"language.min_score must be in [0, 1], got {self.min_score}")
        require(len(self.allowed) > 0, "language.allowed must name at least one language")
        bad = [a for a in self.allowed if len(a) != 2 or not a.isalpha() or not a.islower()]
        require(not bad, f"language.allowed: not ISO 639-1 codes: {bad}")


@dataclass
class GopherRepetitionConfig:
    enabled: bool = True
    dup_line_frac: Optional[float] = 0.3
    dup_para_frac: Optional[float] = 0.3
    dup_line_char_frac: Optional[float] = 0.2
    dup_para_char_frac: Optional[float] = 0.2
    top_n_grams: list[list[float]] = field(default_factory=lambda: [[2, 0.2], [3, 0.18], [4, 0.16]])
    dup_n_grams: list[list[float]] = field(default_factory=lambda: [
        [5, 0.15], [6, 0.14], [7, 0.13], [8, 0.12], [9, 0.11], [10, 0.10]])

    def kwargs(self) -> dict:
        kw = _plain(self)
        kw["top_n_grams"] = tuple((int(n), float(f)) for n, f in self.top_n_grams)
        kw["dup_n_grams"] = tuple((int(n), float(f)) for n, f in self.dup_n_grams)
        return kw


@dataclass
class GopherQualityConfig:
    enabled: bool = True
    min_doc_words: Optional[int] = 50
    max_doc_words: Optional[int] = 100000
    min_avg_word_length: Optional[float] = 3
    max_avg_word_length: Optional[float] = 10
    max_symbol_word_ratio: Optional[float] = 0.1
    max_bullet_lines_ratio: Optional[float] = 0.9
    max_ellipsis_lines_ratio: Optional[float] = 0.3
    max_non_alpha_words_ratio: Optional[float] = 0.8
    min_stop_words: Optional[int] = 2


@dataclass
class C4QualityParams:
    enabled: bool = True
    filter_no_terminal_punct: bool = True
    min_num_sentences: int = 5
    min_words_per_line: int = 3
    max_word_length: int = 1000
    filter_lorem_ipsum: bool = True
    filter_javascript: bool = True
    filter_curly_bracket: bool = True
    filter_policy: bool = True


@dataclass
class FineWebQualityConfig:
    enabled: bool = True
    line_punct_thr: float = 0.12
    line_punct_exclude_zero: bool = False
    short_line_thr: float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3


@dataclass
class FilterConfig:
    gopher_repetition: GopherRepetitionConfig = field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig = field(default_factory=GopherQualityConfig)
    c4_quality: C4QualityParams = field(default_factory=C4QualityParams)
    fineweb_quality: FineWebQualityConfig = field(default_factory=FineWebQualityConfig)


@dataclass
class PIIConfig:
    emails: bool = True
    ips: bool = True
    only_public_ips: bool = True


@dataclass
class DedupConfig:
    """Exact (normalised-text hash) then MinHash-LSH near-dedup.

    LSH with ``bands`` x ``rows`` proposes candidates; a candidate is a duplicate only if its
    estimated Jaccard similarity is >= ``threshold`` (no false positives from banding alone).
    ``engine``: ``datasketch`` (one in-memory LSH in finalize, lmforge/curation/dedup.py) or
    ``datatrove`` (datatrove's signature and bucket stages on the curate executor, then one
    confirming pass; lmforge/curation/dedup_datatrove.py), same decisions contract.
    """
    engine: Literal["datasketch", "datatrove"] = "datasketch"
    exact: bool = True
    near: bool = True
    shingle_size: int = 5          # words per shingle
    num_perm: int = 120
    bands: int = 20                # 20 x 6 and 0.65 chosen from bench/bench_dedup.py --curve (docs/LOG.md)
    rows: int = 6
    threshold: float = 0.65
    seed: int = 1

    def __post_init__(self):
        require(self.shingle_size >= 1, f"data.dedup.shingle_size must be >= 1, got {self.shingle_size}")
        require(self.bands >= 1 and self.rows >= 1, "data.dedup.bands and rows must be >= 1")
        require(self.bands * self.rows <= self.num_perm,
                f"data.dedup: bands*rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        require(0.0 < self.threshold <= 1.0, f"data.dedup.threshold must be in (0, 1], got {self.threshold}")
        require(self.engine == "datasketch" or self.bands * self.rows == self.num_perm,
                f"data.dedup: engine datatrove stores bands*rows = {self.bands * self.rows} MinHash values; "
                f"set num_perm to that (got {self.num_perm})")


@dataclass
class CurateSlurmConfig:
    """datatrove SlurmPipelineExecutor settings (``executor: slurm``)."""
    partition: Optional[str] = None   # null: the cluster's default partition (sinfo's `*`)
    time: str = "02:00:00"
    cpus_per_task: int = 1
    mem_per_cpu_gb: int = 2        # a worker's resident peak was measured at 1.6 GB (docs/LOG.md)
    qos: Optional[str] = None
    sbatch_args: dict = field(default_factory=dict)
    tasks_per_job: int = 1         # datatrove tasks run one after another in one array job (small tasks)
    wait: bool = True              # the stage stays until finalize has ended (dvc repro records the outputs)
    poll_s: float = 10.0           # seconds between looks at the queue while waiting
    queue_retry_s: float = 600.0   # how long a failing squeue (controller down) is retried before the stage fails

    def __post_init__(self):
        require(self.tasks_per_job >= 1, f"data.slurm.tasks_per_job must be >= 1, got {self.tasks_per_job}")
        require(self.poll_s > 0, f"data.slurm.poll_s must be > 0, got {self.poll_s}")
        require(self.queue_retry_s >= 0, f"data.slurm.queue_retry_s must be >= 0, got {self.queue_retry_s}")
        require(self.partition is None or self.partition.strip() != "",
                "data.slurm.partition must be a partition name, or null for the cluster's default")


# 2 MB. Common Crawl truncates HTTP payloads at 1 MiB, so no real web page record is refused, and
# Gopher's max_doc_words (100,000 words, ~0.6 MB of English) rejects any larger text anyway:
# the cap loses nothing the filters would keep. It bounds memory: one 50 MB document took
# 4.9 GB in extraction and the filters.
MAX_DOC_BYTES = 2_000_000

FILTER_KEYS = tuple(f.name for f in dataclasses.fields(FilterConfig))
OVERRIDABLE = (*FILTER_KEYS, "language", "extract", "url_filter")


@dataclass
class SourceConfig:
    name: str
    path: str
    format: Literal["warc", "jsonl", "parquet"]
    weight: float = 1.0
    filters: dict = field(default_factory=dict)  # per-source overrides, keys in OVERRIDABLE

    def __post_init__(self):
        require(self.name.replace("_", "").replace("-", "").isalnum(),
                f"data.sources: name must be letters, digits, '-' or '_', got {self.name!r}")
        require(self.weight > 0, f"data.sources[{self.name}].weight must be > 0, got {self.weight}")
        unknown = sorted(set(self.filters) - set(OVERRIDABLE))
        require(not unknown, f"data.sources[{self.name}].filters: unknown section(s) {unknown}; "
                             f"known: {list(OVERRIDABLE)}")


@dataclass
class DataConfig:
    sources: list[SourceConfig]
    workers: int = 2
    executor: Literal["local", "slurm", "ray"] = "local"
    progress_s: float = 30.0   # a progress line (shards, bytes, documents, rate, ETA) this often; 0 = none
    slurm: CurateSlurmConfig = field(default_factory=CurateSlurmConfig)
    val_fraction: float = 0.05
    rows_per_shard: int = 5000
    # per-shard filter results, keyed by shard content + settings + code (lmforge/curation/shard_cache.py);
    # a shard already curated is not run again. null = no cache. Not a DVC output, on purpose.
    cache_dir: Optional[str] = "data/.curate_cache"
    # documents larger than this (WARC: record Content-Length; JSONL/Parquet: UTF-8 bytes of the
    # text) are rejected as `read:too_large` before extraction; null = no cap. See MAX_DOC_BYTES.
    max_doc_bytes: Optional[int] = MAX_DOC_BYTES
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    url_filter: URLFilterConfig = field(default_factory=URLFilterConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    pii: PIIConfig = field(default_factory=PIIConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    # keep/drop labels from the review page, harvested from the feedback store; a `drop`
    # label rejects the document (reason `review`). null = ignore; a missing file = no labels.
    review_labels: Optional[str] = "data/feedback/review_labels.parquet"
    decontamination: DecontaminationConfig = field(default_factory=DecontaminationConfig)

    def __post_init__(self):
        require(len(self.sources) > 0, "data.sources must list at least one source")
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        require(not dup, f"data.sources: duplicate source name(s) {dup}")
        require(self.workers >= 1, f"data.workers must be >= 1, got {self.workers}")
        require(self.progress_s >= 0, f"data.progress_s must be >= 0 (0 = no progress line), got {self.progress_s}")
        require(0.0 <= self.val_fraction < 1.0, f"data.val_fraction must be in [0, 1), got {self.val_fraction}")
        require(self.rows_per_shard >= 1, f"data.rows_per_shard must be >= 1, got {self.rows_per_shard}")
        require(self.max_doc_bytes is None or self.max_doc_bytes >= 1,
                f"data.max_doc_bytes must be >= 1 (or null for no cap), got {self.max_doc_bytes}")
        for s in self.sources:  # validate overrides now, not in a worker later
            self.for_source(s)

    def for_source(self, source: SourceConfig) -> "SourceSettings":
        """Defaults merged with ``source.filters`` overrides, type-checked."""
        merged = {}
        for key in OVERRIDABLE:
            base = getattr(self.filters, key) if key in FILTER_KEYS else getattr(self, key)
            over = source.filters.get(key) or {}
            if not isinstance(over, dict):
                raise ParamsError(f"data.sources[{source.name}].filters.{key}: expected a mapping, got {over!r}")
            merged[key] = build(type(base), {**_plain(base, keep_enabled=True), **over},
                                f"data.sources[{source.name}].filters.{key}")
        return SourceSettings(source=source, **merged)


@dataclass
class SourceSettings:
    """Everything one source's per-shard pipeline needs, after overrides."""
    source: SourceConfig
    extract: ExtractConfig
    url_filter: URLFilterConfig
    language: LanguageConfig
    gopher_repetition: GopherRepetitionConfig
    gopher_quality: GopherQualityConfig
    c4_quality: C4QualityParams
    fineweb_quality: FineWebQualityConfig


def filter_kwargs(section) -> dict:
    """A quality filter's params section as its datatrove constructor's keyword arguments."""
    return section.kwargs() if hasattr(section, "kwargs") else _plain(section)


def _plain(obj, keep_enabled: bool = False) -> dict:
    d = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if not keep_enabled:
        d.pop("enabled", None)
    return d
