"""Write tests/release/vllm_cli_flags.json: the long flags `vllm serve` accepts, read from the
argument definitions inside a vLLM wheel (no vLLM import, no GPU), so the deploy files' flags are
checked against the version they pin (deploy.vllm.tag); and the ``vllm:*`` metric names its
Prometheus logger defines (``vllm/v1/metrics/loggers.py``), which the Grafana dashboard may chart.

Where the flags come from in the wheel: ``vllm/engine/arg_utils.py`` (EngineArgs and
AsyncEngineArgs ``add_argument("--...")`` calls) and ``vllm/entrypoints/common/cli_args.py``
(``make_arg_parser``'s own ``add_argument`` calls, and one ``--field-name`` per field of the
frontend argument dataclasses). Get the wheel with
``pip download vllm==X --no-deps --only-binary :all: --python-version 3.12 --platform manylinux_2_28_x86_64``.

    python scripts/vllm_flags.py vllm-0.34.0-cp38-abi3-manylinux_2_28_x86_64.whl
"""
from __future__ import annotations

import ast
import datetime
import hashlib
import json
import re
import sys
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "release" / "vllm_cli_flags.json"
ENGINE, FRONTEND = "vllm/engine/arg_utils.py", "vllm/entrypoints/common/cli_args.py"
METRICS = "vllm/v1/metrics/loggers.py"


def literal_flags(tree: ast.AST) -> set[str]:
    """Every ``"--x"`` string given to an ``add_argument`` call."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            out |= {a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
                    and a.value.startswith("--")}
    return out


def dataclass_flags(tree: ast.AST, suffix: str = "FrontendArgs") -> set[str]:
    """``--field-name`` for each annotated field of the classes named ``*FrontendArgs``."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name.endswith(suffix):
            out |= {"--" + s.target.id.replace("_", "-") for s in node.body
                    if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
                    and not s.target.id.startswith("_")}
    return out


def main(argv: list[str] | None = None) -> int:
    (wheel,) = argv if argv is not None else sys.argv[1:]
    version = Path(wheel).name.split("-")[1]
    with zipfile.ZipFile(wheel) as z:
        engine, frontend = (ast.parse(z.read(p).decode()) for p in (ENGINE, FRONTEND))
        metrics = {n.value for n in ast.walk(ast.parse(z.read(METRICS).decode()))
                   if isinstance(n, ast.Constant) and isinstance(n.value, str) and re.fullmatch(r"vllm:[a-z0-9_]+", n.value)}
    flags = literal_flags(engine) | literal_flags(frontend) | dataclass_flags(frontend)
    OUT.write_text(json.dumps({
        "about": "Long flag names `vllm serve` accepts, read from vLLM's own argument definitions "
                 "(scripts/vllm_flags.py); the deploy files may only use these. Regenerate when deploy.vllm.tag moves.",
        "vllm_version": version,
        "checked_on": datetime.date.today().isoformat(),
        "sources": [{"wheel": Path(wheel).name, "sha256": hashlib.sha256(Path(wheel).read_bytes()).hexdigest(),
                     "files": [ENGINE, FRONTEND, METRICS]}],
        "flags": sorted(flags),
        "metrics": sorted(metrics)}, indent=1) + "\n")
    print(f"{OUT}: {len(flags)} flags of vLLM {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
