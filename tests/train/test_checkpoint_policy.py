"""Retention (last 2 + powers of two) and what counts as a complete checkpoint."""
from lmforge.train import checkpoint as C


def _mk(root, step, complete=True):
    p = root / C.name(step)
    (p / "ds").mkdir(parents=True)
    if complete:
        (p / C.MARKER).write_text(f"{step}\n")
    return p


def test_keep_last_two_and_powers_of_two():
    steps = list(range(10, 210, 10))
    assert C.to_keep(steps, 2) == {190, 200}
    steps = list(range(8, 200, 8))
    assert C.to_keep(steps, 2) == {8, 16, 32, 64, 128, 184, 192}


def test_prune_and_latest_ignore_torn_saves(tmp_path):
    for s in (1, 2, 3, 4, 5, 6, 7):
        _mk(tmp_path, s)
    _mk(tmp_path, 8, complete=False)          # renamed but marker never written
    (tmp_path / ".step_00000009.tmp").mkdir()  # killed before the rename
    assert C.latest(tmp_path).name == C.name(7)
    C.prune(tmp_path, keep_last=2)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [C.name(s) for s in (1, 2, 4, 6, 7)]
    assert C.latest(tmp_path).name == C.name(7)


def test_no_checkpoint(tmp_path):
    assert C.latest(tmp_path / "missing") is None
    assert C.latest(tmp_path) is None
