"""Code deps of each stage, read from the real import graph, so dvc.yaml stays exact.

A stage must rerun when, and only when, code it runs changes. Hand-written code deps
drift: a stage that imports a module nobody listed keeps stale outputs after that
module changes, and listing whole folders reruns stages that never import the change.
This module walks the imports of a stage's entry module (``python -m stages.X`` in
dvc.yaml), including imports inside functions, and returns the ``lmforge``/``stages``
files it can reach. ``python -m lmforge.codedeps`` checks dvc.yaml against that;
``--write`` rewrites each stage's code deps (data deps and comments are kept).

A module that starts another as a child process (``python -m ...``) names it in a module-level
``SUBPROCESS_MODULES`` tuple; the walk follows those names like imports, so the deploy stage,
which runs `lmforge serve` in a subprocess, reruns when the server's code changes.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGES = ("lmforge", "stages")


def module_file(root: Path, module: str) -> Path | None:
    p = root.joinpath(*module.split("."))
    if (p / "__init__.py").is_file():
        return p / "__init__.py"
    return p.with_suffix(".py") if p.with_suffix(".py").is_file() else None


# Module-level tuples of module names that code imports or runs by name: a subprocess's
# ``python -m`` modules (SUBPROCESS_MODULES) and the CLI's importlib-loaded commands (SUBCOMMANDS).
NAMED_MODULES = ("SUBPROCESS_MODULES", "SUBCOMMANDS")


def _imported(path: Path, module: str) -> set[str]:
    """Every lmforge/stages module ``path`` imports: import statements anywhere, literal
    ``importlib.import_module`` calls, and the module names listed in ``NAMED_MODULES``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names |= {base} | {f"{base}.{a.name}" for a in node.names}  # `from pkg import mod`
        elif (isinstance(node, ast.Assign) and any(getattr(t, "id", None) in NAMED_MODULES for t in node.targets)
              and isinstance(node.value, (ast.Tuple, ast.List))):
            names |= {e.value for e in node.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.add(node.args[0].value)  # importlib.import_module("lmforge.x")
    return {n for n in names if n.split(".")[0] in PACKAGES}


def closure(root: Path, entry: str) -> set[str]:
    """Repo-relative files of every module ``entry`` can import (parent packages included)."""
    files: dict[str, Path] = {}
    todo = [entry]
    while todo:
        mod = todo.pop()
        path = module_file(root, mod)
        if path is None or mod in files:
            continue
        files[mod] = path
        parts = mod.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))] + sorted(_imported(path, mod))
    return {p.relative_to(root).as_posix() for p in files.values()}


def compact(root: Path, files: set[str]) -> list[str]:
    """``files`` with every folder whose files are all in it listed as the folder instead."""
    def whole(folder: Path) -> bool:
        inside = [f for f in folder.rglob("*") if f.is_file() and "__pycache__" not in f.parts]
        return bool(inside) and all(f.relative_to(root).as_posix() in files for f in inside)

    out: set[str] = set()
    for f in files:
        parts = Path(f).parts
        top = next((Path(*parts[:i]) for i in range(2, len(parts)) if whole(root / Path(*parts[:i]))), None)
        out.add(top.as_posix() if top is not None else f)
    return sorted(out)


def entry_module(cmd: str | list) -> str | None:
    words = " ".join(cmd if isinstance(cmd, list) else [cmd]).split()
    return words[words.index("-m") + 1] if "-m" in words and words[0].startswith("python") else None


def _dep_path(dep) -> str:
    return dep if isinstance(dep, str) else next(iter(dep))


def is_code(path: str) -> bool:
    return path.split("/")[0] in PACKAGES


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def report(root: Path) -> dict[str, dict[str, list[str]]]:
    """Per stage: code files imported but not listed (``missing``) and listed but not imported."""
    import yaml

    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        entry = entry_module(stage["cmd"])
        if entry is None:
            continue
        need = closure(root, entry)
        deps = [_dep_path(d) for d in stage.get("deps") or []]
        out[name] = {"missing": sorted(f for f in need if not covered(f, deps)),
                     "unused": sorted(d for d in deps if is_code(d) and not any(covered(f, [d]) for f in need))}
    return out


def write(root: Path) -> None:
    """Rewrite each stage's code deps to exactly its import closure (ruamel keeps comments)."""
    from ruamel.yaml import YAML

    y = YAML()
    y.width = 120
    y.indent(mapping=2, sequence=4, offset=2)  # the style dvc.yaml is written in
    path = root / "dvc.yaml"
    doc = y.load(path.read_text())
    for name, stage in doc["stages"].items():
        entry = entry_module(stage["cmd"])
        if entry is None:
            continue
        deps = stage["deps"]
        for i in reversed(range(len(deps))):
            if is_code(_dep_path(deps[i])):
                del deps[i]
        deps.extend(compact(root, closure(root, entry)))
    with open(path, "w") as f:
        y.dump(doc, f)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(".")
    if "--write" in args:
        write(root)
    bad = {n: r for n, r in report(root).items() if r["missing"] or r["unused"]}
    for name, r in bad.items():
        print(f"{name}: missing {r['missing']} unused {r['unused']}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
