"""Atomic writes leave either the old artifact or the new one, never a torn one."""
import json

import pytest

from lmforge.io import atomic_dir, atomic_path, write_csv, write_json


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"v": 2, "half')
            raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_dir_swaps_whole_folder(tmp_path):
    target = tmp_path / "shards"
    with atomic_dir(target) as d:
        (d / "a").write_text("1")
    with pytest.raises(ValueError):
        with atomic_dir(target) as d:
            (d / "b").write_text("2")
            raise ValueError("boom")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with atomic_dir(target) as d:
        (d / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]


def test_write_csv_header_and_rows(tmp_path):
    write_csv(tmp_path / "p.csv", [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.0}])
    assert (tmp_path / "p.csv").read_text().splitlines() == ["step,loss", "1,2.5", "2,2.0"]


def test_outputs_get_the_usual_permissions(tmp_path):
    import os
    mask = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {})
        with atomic_dir(tmp_path / "d") as d:
            (d / "x").write_text("1")
    finally:
        os.umask(mask)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
