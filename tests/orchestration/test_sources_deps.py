"""Your own crawl is a real dependency: the local sources params.yaml names are deps of curate
(lmforge.codedeps keeps them in dvc.yaml, lmforge check says when they are not), so a changed
crawl outside data/sample reruns curation."""
from __future__ import annotations

import shutil

import pytest

from support.orchestration import ROOT, clone_project, git_commit, pipeline_env, run


def _own_crawl(params: dict) -> None:
    params["data"]["sources"] = [{"name": "handbook", "path": "crawl/handbook-*.warc.gz", "format": "warc",
                                  "weight": 1.0}]


@pytest.mark.slow
def test_a_changed_local_source_reruns_curate(tmp_path):
    repo = clone_project(tmp_path / "clone", _own_crawl)
    shards = sorted((ROOT / "data/sample/crawl").glob("handbook-*.warc.gz"))
    (repo / "crawl").mkdir()
    shutil.copy(shards[0], repo / "crawl" / shards[0].name)
    env = pipeline_env(repo)
    p = run(["python", "-m", "lmforge.check"], repo, check=False, env=env)
    assert p.returncode == 2 and "crawl is not a dep of stage 'curate'" in p.stderr
    run(["python", "-m", "lmforge.codedeps", "--write"], repo, env=env)
    run(["python", "-m", "lmforge.check"], repo, env=env)
    # curate alone: without harvest's review labels (made downstream of the feedback store),
    # which curate reads when present, and which have nothing to do with the crawl
    dvc_yaml = repo / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("      - data/feedback/review_labels.parquet", "", 1))
    git_commit(repo, "curate depends on my crawl")
    run(["dvc", "repro", "--single-item", "curate"], repo, env=env, timeout=900)
    assert "curate" not in run(["dvc", "status", "curate"], repo, env=env).stdout
    shutil.copy(shards[-1], repo / "crawl" / "handbook-new.warc.gz")   # the crawl grows
    status = run(["dvc", "status", "curate"], repo, env=env).stdout
    assert "modified:           crawl" in status or ("crawl" in status and "modified" in status), status
    assert "Running stage 'curate'" in run(["dvc", "repro", "--single-item", "curate"], repo, env=env,
                                            timeout=900).stdout
