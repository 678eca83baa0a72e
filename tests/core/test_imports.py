"""No import cycles in lmforge/: the dependency graph of its modules is a DAG.

A cycle hidden behind an import inside a function still means two modules that
cannot be understood, tested or moved apart, so imports in function bodies count
too (the same walker that computes dvc.yaml's code deps: ``lmforge.codedeps``).
"""
from __future__ import annotations

from pathlib import Path

from lmforge.codedeps import _imported

ROOT = Path(__file__).resolve().parents[2]


def _graph() -> dict[str, set[str]]:
    mods = {}
    for f in (ROOT / "lmforge").rglob("*.py"):
        name = ".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        mods[name] = f
    graph = {}
    for name, f in mods.items():
        deps = set()
        for imp in _imported(f, name):
            while imp and imp not in mods:  # `from pkg.mod import name` -> pkg.mod
                imp = imp.rpartition(".")[0]
            if imp and imp != name and not name.startswith(imp + "."):  # a module's own package is not a cycle
                deps.add(imp)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_lmforge_has_no_import_cycles():
    graph = _graph()
    assert len(graph) > 50
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_planted_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
