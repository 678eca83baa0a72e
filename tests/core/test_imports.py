"""lmforge/'s imports point down: no module cycles, and no room imports a room above it.

A cycle hidden behind an import inside a function still means two modules that
cannot be understood, tested or moved apart, so imports in function bodies count
too, and so do modules loaded by name (``importlib.import_module`` and the
``SUBCOMMANDS``/``SUBPROCESS_MODULES`` lists): the same walker that computes
dvc.yaml's code deps (``lmforge.codedeps``).

The rooms stand in floors (``FLOORS``, bottom first; docs/ARCHITECTURE.md draws
them). A module may import its own room and any room on a lower floor; rooms on the
same floor do not import each other. A tie between two rooms, even without a module
cycle, fails here, naming the importing module and what it imports.
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


# Bottom first. "ground" is every top-level module (lmforge/*.py) but the CLI: the shared
# contracts (params, errors, atomic writes, the chat template, decontamination, PII).
FLOORS = (
    ("ground",),
    ("curation", "tokens", "checks", "model"),
    ("train",),
    ("align",),
    ("evals",),
    ("serve",),
    ("feedback",),
    ("gateway",),
    ("release",),
    ("report",),
    ("builders", "cli", "testing"),
)
FLOOR = {room: i for i, rooms in enumerate(FLOORS) for room in rooms}
# Upward ties still waiting for their move, each with the issue that moves it.
KNOWN_UPWARD: set[tuple[str, str]] = set()


# Top-level modules that stand above every room: the `lmforge` command, and `lmforge check`,
# which loads each room's params section class by name (check.SECTIONS).
TOP_MODULES = ("cli", "check")


def room(module: str) -> str:
    """``lmforge.curation.curate`` -> ``curation``; a top-level module is on the ground floor, but ``TOP_MODULES``."""
    parts = module.split(".")
    if len(parts) > 2 or (ROOT / "lmforge" / parts[-1]).is_dir():
        return parts[1]
    return "cli" if parts[-1] in TOP_MODULES else "ground"


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a room from a room on the same or a higher floor."""
    bad = []
    for mod, deps in sorted(graph.items()):
        for dep in sorted(deps):
            a, b = room(mod), room(dep)
            if a != b and FLOOR[b] >= FLOOR[a] and (mod, dep) not in KNOWN_UPWARD:
                bad.append(f"{mod} ({a}, floor {FLOOR[a]}) imports {dep} ({b}, floor {FLOOR[b]})")
    return bad


def test_every_room_has_a_floor():
    assert {room(m) for m in _graph()} <= set(FLOOR)


def test_imports_only_go_down():
    assert upward(_graph()) == []


def test_the_floor_check_finds_a_planted_upward_import():
    graph = _graph()
    graph["lmforge.curation.curate"] = graph["lmforge.curation.curate"] | {"lmforge.serve.engine"}
    graph["lmforge.align.sft"] = graph["lmforge.align.sft"] | {"lmforge.evals.harness"}
    assert upward(graph) == [
        "lmforge.align.sft (align, floor 3) imports lmforge.evals.harness (evals, floor 4)",
        "lmforge.curation.curate (curation, floor 1) imports lmforge.serve.engine (serve, floor 5)",
    ]


def test_lmforge_has_no_import_cycles():
    graph = _graph()
    assert len(graph) > 50
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_planted_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
