"""The release is a DVC artifact (dvc.yaml `artifacts:`), so `dvc artifacts get` and GTO's
versions and stages (`prod`) work on it."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import yaml

from support.orchestration import BIN, GIT_IDENTITY, git_init

ROOT = Path(__file__).resolve().parents[2]


def test_the_release_is_an_artifact_dvc_reads_and_gto_stages(tmp_path):
    for f in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / f, tmp_path / f)
    (tmp_path / ".dvc").mkdir()
    shutil.copy(ROOT / ".dvc" / "config", tmp_path / ".dvc" / "config")
    git_init(tmp_path)
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run(["git", "commit", "-qm", "pipeline"], cwd=tmp_path, check=True)

    from dvc.repo import Repo

    with Repo(str(tmp_path)) as repo:
        artifacts = repo.artifacts.read()["dvc.yaml"]
    release = artifacts["lmforge-release"]
    out_dir = yaml.safe_load((ROOT / "params.yaml").read_text())["release"]["out_dir"]
    assert release.path == out_dir and release.type == "model"

    gto = [str(BIN / "gto")]
    for args in (["register", "lmforge-release", "--version", "v1.0.0"],
                 ["assign", "lmforge-release", "--version", "v1.0.0", "--stage", "prod"]):
        subprocess.run(gto + args, cwd=tmp_path, check=True, capture_output=True,
                       env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path),
                            "GIT_AUTHOR_NAME": GIT_IDENTITY["name"], "GIT_AUTHOR_EMAIL": GIT_IDENTITY["email"],
                            "GIT_COMMITTER_NAME": GIT_IDENTITY["name"], "GIT_COMMITTER_EMAIL": GIT_IDENTITY["email"]})
    shown = json.loads(subprocess.run(gto + ["show", "--json"], cwd=tmp_path, check=True, capture_output=True,
                                      text=True).stdout)
    assert shown["lmforge-release"]["stage"] == {"prod": "v1.0.0"}
