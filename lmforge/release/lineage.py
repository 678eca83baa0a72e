"""Where a released model came from: git commit, params, and dvc.lock hashes upstream.

`upstream(lock, path)` walks dvc.lock backwards from an artifact: the stage whose outs
hold the path, that stage's deps, the stages producing those deps, and so on until
deps that no stage produces (the crawl shards and other source data). Every visited
artifact keeps the md5 DVC recorded for it, so the model card pins the exact bytes
of each input back to the crawl. The release stage reads dvc.lock without declaring
it as a dep: dvc.lock changes whenever any stage runs, and a dep on it would make
release re-run (and the lock never settle).
"""
from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import yaml


@dataclasses.dataclass
class Artifact:
    path: str
    md5: str | None
    stage: str | None  # producing stage; None for source data
    size: int | None = None
    nfiles: int | None = None


def load_lock(path: str | Path = "dvc.lock") -> dict:
    p = Path(path)
    if not p.exists():
        return {}
    data = yaml.safe_load(p.read_text()) or {}
    return data.get("stages") or {}


def _norm(p: str) -> str:
    return p.rstrip("/").removeprefix("./")


def _covers(out: str, path: str) -> bool:
    out, path = _norm(out), _norm(path)
    return path == out or path.startswith(out + "/") or out.startswith(path + "/")


def _entry(e: dict) -> tuple[str | None, int | None, int | None]:
    return e.get("md5"), e.get("size"), e.get("nfiles")


def upstream(lock: dict, path: str) -> tuple[list[Artifact], list[str]]:
    """Artifacts `path` depends on (itself included), and the stages visited, in walk order."""
    producers = {}
    for stage, body in lock.items():
        for out in body.get("outs") or []:
            producers.setdefault(_norm(out["path"]), (stage, out))
    seen_paths: dict[str, Artifact] = {}
    stages: list[str] = []
    todo = [_norm(path)]
    while todo:
        p = todo.pop(0)
        if p in seen_paths:
            continue
        hit = next(((s, o) for out, (s, o) in producers.items() if _covers(out, p)), None)
        if hit is None:
            seen_paths[p] = Artifact(p, None, None)
            continue
        stage, out = hit
        md5, size, nfiles = _entry(out)
        seen_paths[p] = Artifact(_norm(out["path"]), md5, stage, size, nfiles)
        if stage in stages:
            continue
        stages.append(stage)
        for dep in lock[stage].get("deps") or []:
            d = _norm(dep["path"])
            if any(_covers(o, d) for o in producers):
                todo.append(d)
            elif d not in seen_paths:
                md5, size, nfiles = _entry(dep)
                seen_paths[d] = Artifact(d, md5, None, size, nfiles)
    uniq: dict[str, Artifact] = {}
    for a in seen_paths.values():
        uniq.setdefault(a.path, a)
    return list(uniq.values()), stages


def git_commit(cwd: str | Path = ".") -> tuple[str, bool]:
    """(commit sha or 'uncommitted', whether the work tree has changes)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True)
        return sha.stdout.strip(), bool(dirty.stdout.strip())
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "uncommitted", True
