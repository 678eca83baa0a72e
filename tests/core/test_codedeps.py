"""The import graph: code deps in dvc.yaml are exactly what each stage imports.

A stage must rerun when code it runs changes, and only then. ``lmforge.codedeps``
reads the imports (also those inside functions) from each stage's entry module;
these tests hold dvc.yaml to that, and check the walker itself on a planted package.
"""
from __future__ import annotations

from pathlib import Path

from lmforge.codedeps import closure, compact, report

ROOT = Path(__file__).resolve().parents[2]


def test_every_stage_lists_exactly_the_code_it_imports():
    bad = {name: r for name, r in report(ROOT).items() if r["missing"] or r["unused"]}
    assert bad == {}, "run `python -m lmforge.codedeps --write` and review the dvc.yaml diff"


def test_the_walker_follows_lazy_relative_and_package_imports(tmp_path):
    pkg = tmp_path / "lmforge"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .a import f\n")
    (pkg / "sub" / "a.py").write_text("def f():\n    from lmforge import lazy\n")
    (pkg / "lazy.py").write_text("import json\n")
    (pkg / "unused.py").write_text("")
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "s.py").write_text("from lmforge.sub import f\n")
    found = closure(tmp_path, "stages.s")
    assert found == {"stages/s.py", "lmforge/__init__.py", "lmforge/sub/__init__.py", "lmforge/sub/a.py",
                     "lmforge/lazy.py"}
    # a folder whose every file is imported is listed as the folder
    assert compact(tmp_path, found) == ["lmforge/__init__.py", "lmforge/lazy.py", "lmforge/sub", "stages/s.py"]
