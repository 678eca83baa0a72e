"""Great Expectations checks at the data boundaries, with errors a person can act on.

Every part of lmforge that hands data to the next stage (curated corpus, packed
tokens, instruction pairs, harvested feedback) validates it here with real Great
Expectations 1.x suites, so the results are ordinary GX validation results (JSON)
and Data Docs (HTML) that anyone who knows GX can read. What this wrapper adds:

* one call, ``run_checks(df, name, expectations, out_json, docs_dir)``, that builds an
  ephemeral context, a pandas data source, a whole-dataframe batch, a suite, a
  validation definition and a checkpoint (with ``UpdateDataDocsAction`` when Data
  Docs are asked for) — no ``gx/`` project folder to commit;
* outputs written atomically (lmforge.io): the JSON is always written, also on
  failure, so ``metrics/gx/*.json`` shows what failed; it carries no run ids or
  timestamps, so re-checking unchanged data rewrites identical bytes; Data Docs are
  built in a temporary folder and swapped in whole, under a run id fixed by the check
  and the data's hash, with GX's per-build stamps and random element ids replaced and
  its logo served from the site's own static folder: the same data gives the same
  bytes (GX's pages still load Bootstrap and jQuery from CDNs);
* on failure a ``DataCheckError`` whose message names every failed expectation
  (type, column, observed values) and the file(s) the failing rows came from.

Great Expectations takes ~4 s to import, so it is imported only inside
``run_checks``; importing this module is cheap.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Sequence

from lmforge.io import atomic_dir, write_json
from lmforge.stage import StageFailure

log = logging.getLogger(__name__)

__all__ = ["DataCheckError", "run_checks", "check_stage", "format_failures", "summary"]

# The kwargs that say *what* an expectation checks; shown in error messages.
_SHOWN_KWARGS = ("column", "column_list", "value_set", "regex", "min_value", "max_value", "value")


class DataCheckError(StageFailure):
    """A data check failed. ``failures`` holds one dict per failed expectation."""

    def __init__(self, message: str, failures: list[dict], result: dict):
        super().__init__(message)
        self.failures = failures
        self.result = result


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _matched(regex: str, value: Any) -> Any:
    m = re.search(regex, value) if isinstance(value, str) else None
    return m.group(0) if m else value


def _files_of(files: Any, indices: Sequence[Any]) -> list[str]:
    """Files of the failing rows when ``files`` maps rows to files, else all files."""
    if files is None:
        return []
    if isinstance(files, (str, os.PathLike)):
        return [str(files)]
    if hasattr(files, "loc") and indices:  # a pandas Series aligned with the dataframe
        found = []
        for i in indices:
            try:
                f = str(files.loc[i])
            except KeyError:
                continue
            if f not in found:
                found.append(f)
        if found:
            return found
    if hasattr(files, "unique"):
        return [str(f) for f in files.unique()]
    return [str(f) for f in files]


def _exception_message(info: dict) -> str | None:
    """GX nests exception info per metric when a metric fails; flatten to one line."""
    infos = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for i in infos:
        if i.get("raised_exception"):
            msg = str(i.get("exception_message") or "exception").strip()
            return msg.splitlines()[0] if msg else "exception"
    return None


def format_failures(result: dict, files: Any = None) -> list[dict]:
    """One dict per failed expectation: type, kwargs, observed summary and files."""
    failures = []
    for r in result.get("results", []):
        if r.get("success"):
            continue
        cfg = r.get("expectation_config", {})
        kwargs = cfg.get("kwargs", {})
        res = r.get("result") or {}
        exc = _exception_message(r.get("exception_info") or {})
        if exc:
            observed = f"raised: {exc}"
        elif "unexpected_count" in res:
            values = (res.get("partial_unexpected_list") or [])[:3]
            if "regex" in kwargs and "not_match" in cfg.get("type", ""):
                values = [_matched(kwargs["regex"], v) for v in values]  # the offending part
            sample = ", ".join(_short(v, 60) for v in values)
            observed = (f"{res['unexpected_count']} of {res.get('element_count', '?')} rows "
                        f"unexpected (e.g. {sample})")
        else:
            observed = f"observed {_short(res.get('observed_value'), 200)}"
        failures.append({
            "expectation": cfg.get("type", "?"),
            "kwargs": {k: kwargs[k] for k in _SHOWN_KWARGS if k in kwargs},
            "observed": observed,
            "files": _files_of(files, res.get("partial_unexpected_index_list") or []),
        })
    return failures


def summary(result: dict) -> dict:
    """Numbers only, for a ``dvc metrics`` file (the full result has ids and timestamps)."""
    s = result.get("statistics", {})
    return {"success": bool(result.get("success")),
            "rows": int(result.get("lmforge", {}).get("rows", 0)),
            "evaluated_expectations": int(s.get("evaluated_expectations", 0)),
            "unsuccessful_expectations": int(s.get("unsuccessful_expectations", 0)),
            "success_percent": float(s.get("success_percent") or 0.0)}


def _stable(result: dict) -> dict:
    """Drop run ids and timestamps, so the same data and suite give the same JSON bytes
    (downstream DVC stages that depend on it then do not rerun after a mere re-check)."""
    meta = result.get("meta", {})
    for key in ("run_id", "validation_time", "validation_id", "checkpoint_id"):
        meta.pop(key, None)
    meta.get("batch_markers", {}).pop("ge_load_time", None)
    for r in result.get("results", []):
        r.get("expectation_config", {}).pop("id", None)
    return result


def _message(name: str, failures: list[dict], files: Any, out_json: Path) -> str:
    lines = [f"data check '{name}' failed: {len(failures)} expectation(s) not met "
             f"(full result: {out_json})"]
    for f in failures:
        what = ", ".join(f"{k}={_short(v, 60)}" for k, v in f["kwargs"].items())
        where = f" in {', '.join(f['files'][:5])}" if f["files"] else ""
        lines.append(f"  - {f['expectation']}({what}): {f['observed']}{where}")
    if not any(f["files"] for f in failures) and files is not None:
        lines.append(f"  data: {', '.join(_files_of(files, [])[:10])}")
    return "\n".join(lines)


def _prune_unused_static(site: Path) -> None:
    """Drop the Data Docs site's bundled images no page refers to (~3.5 MB of GIFs)."""
    pages = "".join(p.read_text(errors="ignore") for p in site.rglob("*.html"))
    pages += "".join(p.read_text(errors="ignore") for p in site.rglob("*.css"))
    for img in (site / "static" / "images").glob("*"):
        if img.is_file() and img.name not in pages:
            img.unlink()


_STAMP = re.compile(r"\?d=\d{8}T\d{6}\.\d+Z")  # GX's per-build cache buster on asset URLs
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_LOAD_TIME = re.compile(r"(ge_load_time</span>.*?>)\d{8}T\d{6}\.\d+Z", re.S)
_REMOTE_LOGO = re.compile(r"https://great-expectations-web-assets\.s3\.[\w.-]+\.amazonaws\.com/(logo-long\.png)")


def _run_id(name: str, df):
    """A run id that depends on the check and the data only (GX defaults to 'now')."""
    import datetime

    import pandas as pd
    from great_expectations.core.run_identifier import RunIdentifier

    digest = int(pd.util.hash_pandas_object(df.astype(str), index=False).sum()) % 16**12
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return RunIdentifier(run_name=f"{name}-{digest:012x}", run_time=epoch)


def _stable_docs(site: Path) -> None:
    """Strip build-time stamps from the Data Docs pages and point the logo at the site's copy."""
    for page in site.rglob("*.html"):
        depth = len(page.relative_to(site).parts) - 1
        html = _LOAD_TIME.sub(r"\1-", _STAMP.sub("", page.read_text()))
        ids: dict[str, str] = {}  # random element ids -> numbered in order of appearance
        html = _UUID.sub(lambda m: ids.setdefault(m.group(0), f"id{len(ids):04d}"), html)
        html = _REMOTE_LOGO.sub("../" * depth + r"static/images/\1", html)
        page.write_text(html)


def _validation(name: str, expectations: Sequence[Any]):
    """An ephemeral GX context holding suite ``name`` and its whole-dataframe validation."""
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=True, metric_calculations=True)  # stderr
    suite = ctx.suites.add(gx.ExpectationSuite(name=name))
    for e in expectations:
        # A copy, so callers may reuse their expectation objects across calls.
        suite.add_expectation(e.model_copy(deep=True) if hasattr(e, "model_copy") else e.copy())
    asset = ctx.data_sources.add_pandas(f"{name}-source").add_dataframe_asset(name)
    batch = asset.add_batch_definition_whole_dataframe("whole")
    return ctx, ctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))


def _run_checkpoint(ctx, vd, name: str, df, site_dir: Path | None) -> dict:
    """Validate ``df``; with ``site_dir``, also build the Data Docs site there."""
    import great_expectations as gx

    actions = []
    if site_dir is not None:
        ctx.add_data_docs_site(site_name="lmforge", site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(Path(site_dir).resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        actions = [gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["lmforge"])]
    cp = ctx.checkpoints.add(gx.Checkpoint(name=f"{name}-checkpoint", validation_definitions=[vd], actions=actions,
                                           result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5}))
    res = cp.run(batch_parameters={"dataframe": df}, run_id=_run_id(name, df))
    (vr,) = res.run_results.values()
    return vr.to_json_dict()


def run_checks(df, name: str, expectations: Sequence[Any], out_json: str | os.PathLike,
               docs_dir: str | os.PathLike | None = None, files: Any = None) -> dict:
    """Validate ``df`` against ``expectations`` (``great_expectations.expectations`` objects).

    Writes the validation result JSON to ``out_json`` (always) and, when ``docs_dir``
    is given, a Data Docs site to ``docs_dir`` (replaced whole: give each check its
    own folder). ``files`` names the data behind ``df``: a path, a list of paths, or
    a pandas Series aligned with ``df``'s index giving each row's file (then the
    error names the files of the failing rows). Returns the result dict; raises
    ``DataCheckError`` naming each failed expectation and file when any fails.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"check name {name!r}: use letters, digits, '_', '-', '.'")
    if len(expectations) == 0:
        raise ValueError(f"check '{name}': no expectations given")
    out_json = Path(out_json)
    ctx, vd = _validation(name, expectations)
    run = lambda site_dir: _run_checkpoint(ctx, vd, name, df, site_dir)  # noqa: E731

    if docs_dir is not None:
        with atomic_dir(docs_dir) as tmp:
            result = run(tmp)
            _stable_docs(tmp)
            _prune_unused_static(tmp)
    else:
        result = run(None)
    result = _stable(result)
    result["lmforge"] = {"check": name, "rows": int(len(df)),
                         "files": _files_of(files, [])[:100] if files is not None else []}
    write_json(out_json, result)
    if not result.get("success"):
        failures = format_failures(result, files)
        raise DataCheckError(_message(name, failures, files, out_json), failures, result)
    return result


def check_stage(stage: str, df, name: str, expectations: Sequence[Any], out_json: str, docs_dir: str,
                summary_json: str, files: Any = None, unit: str = "rows") -> dict:
    """What a validation stage does: run the suite, always write the summary metric, and on
    failure raise ``DataCheckError`` naming the expectation and file; ``run_stage`` exits
    non-zero with that message (stops `dvc repro`)."""
    try:
        result = run_checks(df, name, expectations, out_json, docs_dir, files=files)
    except DataCheckError as e:
        write_json(summary_json, summary(e.result))
        raise
    write_json(summary_json, summary(result))
    s = result["statistics"]
    log.info("%s: %d %s, %d/%d expectations met -> %s, %s/index.html", stage, len(df), unit,
             s["successful_expectations"], s["evaluated_expectations"], out_json, docs_dir)
    return result
