"""The install: runtime and dev sets split, hashed locks, ranges in pyproject.toml, and every
third-party package the code imports declared (not only present through another package)."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n\n", 1)[-1] if text.startswith("#") else text)
    out = {}
    for b in blocks:
        m = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", b)
        if m:
            assert "--hash=sha256:" in b, f"{lock}: {m.group(1)} has no hash"
            out[canonicalize_name(m.group(1))] = m.group(2)
    return out


def test_runtime_lock_has_no_test_tools_and_dev_lock_extends_it():
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert len(runtime) > 100 and not {"pytest", "playwright", "openai", "ray", "pytest-timeout"} & set(runtime)
    assert {"pytest", "playwright", "ray"} <= set(dev)
    assert {k: dev.get(k) for k in runtime} == runtime        # the same versions in both


def test_pyproject_gives_ranges_and_keeps_ray_an_extra():
    reqs = [Requirement(r) for r in PYPROJECT["dependencies"]]
    assert not [str(r) for r in reqs if any(s.operator == "==" for s in r.specifier)]
    assert "ray" not in {canonicalize_name(r.name) for r in reqs}
    assert any(Requirement(r).name == "ray" for r in PYPROJECT["optional-dependencies"]["ray"])
    assert PYPROJECT["requires-python"] == ">=3.11,<3.14"


def _imports(folder: str) -> set[str]:
    names = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"lmforge", "stages", "__future__"}


def test_every_imported_package_is_declared():
    declared = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["dependencies"]}
    extras = {canonicalize_name(Requirement(r).name) for rs in PYPROJECT["optional-dependencies"].values()
              for r in rs}
    dists = packages_distributions()
    for folder, allowed in (("lmforge", declared), ("stages", declared), ("tests", declared | extras)):
        undeclared = {m: dists.get(m) for m in _imports(folder)
                      if m in dists and not {canonicalize_name(d) for d in dists[m]} & allowed}
        assert undeclared == {}, folder
