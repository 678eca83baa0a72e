"""Hashed URL block lists answer membership as datatrove's sets do, and are built once."""
from __future__ import annotations

from datatrove.pipeline.filters.url_filter import get_list

from lmforge.curation.url_lists import HashedList


def test_hashed_list_equals_datatrove_set(tmp_path):
    (tmp_path / "domains").write_text("# comment\nbad.example\n  spaced.example  \nvery.bad.example\n\xe9t\xe9.example\n")
    ref = get_list(str(tmp_path), "domains", {"extra.example"}, do_normalize=False)
    got = HashedList.load(tmp_path, "domains", {"extra.example"})
    probes = ["bad.example", "spaced.example", "very.bad.example", "\xe9t\xe9.example", "extra.example", "",
              "# comment", "good.example", "bad.example.", "BAD.example", None]
    assert [p in got for p in probes] == [p in ref for p in probes]
    built = sorted(tmp_path.glob("domains.*.npy"))
    assert len(built) == 1
    mtime = built[0].stat().st_mtime_ns
    assert "bad.example" in HashedList.load(tmp_path, "domains")  # reused, not rebuilt
    assert built[0].stat().st_mtime_ns == mtime
