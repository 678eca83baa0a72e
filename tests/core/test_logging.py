"""One logging convention (``lmforge.logconfig``), held by reading the source.

Library modules log to ``logging.getLogger(__name__)``; only a command's entry function
(``main``, ``run``, ``run_stage``) prints, because that is the command's own output; only
``lmforge.logconfig`` configures handlers. A literal logger name is allowed only for
another library's logger (``great_expectations``, to quiet it).
"""
from __future__ import annotations

import ast
import logging
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENTRY_FUNCTIONS = {"main", "run", "run_stage"}
CONFIGURES = "lmforge/logconfig.py"


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return ""


def offences(source: str, path: str) -> list[str]:
    """Every break of the convention in one module's source, as ``path:line: what``."""
    found = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Call):
                name = _name(child.func)
                if name == "print" and path.startswith("lmforge/") and function not in ENTRY_FUNCTIONS:
                    found.append(f"{path}:{child.lineno}: print() outside a command's entry function: log instead")
                elif name.endswith("getLogger"):
                    arg = child.args[0] if child.args else None
                    if arg is None and path != CONFIGURES:
                        found.append(f"{path}:{child.lineno}: the root logger is lmforge.logconfig's")
                    elif isinstance(arg, ast.Constant) and str(arg.value).split(".")[0] in ("lmforge", "stages"):
                        found.append(f"{path}:{child.lineno}: getLogger({arg.value!r}): use __name__")
                elif name.endswith(("basicConfig", "addHandler")) and path != CONFIGURES:
                    found.append(f"{path}:{child.lineno}: {name}(): configure logging in lmforge.logconfig only")
            visit(child, inner)

    visit(ast.parse(source), None)
    return found


def test_lmforge_and_the_stages_follow_the_logging_convention():
    files = sorted([*ROOT.glob("lmforge/**/*.py"), *ROOT.glob("stages/*.py")])
    assert len(files) > 50
    bad = [o for f in files for o in offences(f.read_text(), f.relative_to(ROOT).as_posix())]
    assert bad == []


def test_the_check_finds_planted_breaks():
    planted = ('import logging\nlog = logging.getLogger("lmforge.align")\n'
               'def fit():\n    print("[pretrain] step 1")\n'
               'def main():\n    print("fine: the command\'s output")\n    logging.basicConfig()\n')
    assert offences(planted, "lmforge/align/x.py") == [
        "lmforge/align/x.py:2: getLogger('lmforge.align'): use __name__",
        "lmforge/align/x.py:4: print() outside a command's entry function: log instead",
        "lmforge/align/x.py:7: logging.basicConfig(): configure logging in lmforge.logconfig only"]
    assert offences('import logging\nlogging.getLogger("great_expectations")\n', "lmforge/checks/r.py") == []


def test_a_stage_shows_info_lines_bare_and_warnings_marked_on_stdout(capsys):
    from lmforge.logconfig import configure

    configure()
    logging.getLogger("lmforge.train.trainer").info("step 3: val_loss 1.0")
    logging.getLogger("stages.pretrain").warning("skipped")
    logging.getLogger("__main__").info("pretrain: 8 steps")   # a stage run as python -m stages.pretrain
    logging.getLogger("httpx").info("HTTP Request: GET /")   # another library: WARNING and up only
    assert capsys.readouterr().out == "step 3: val_loss 1.0\nWARNING: skipped\npretrain: 8 steps\n"


def test_a_refused_server_start_leaves_the_processs_logging_alone(tmp_path, monkeypatch, capsys):
    """``lmforge gateway`` configures server logging only once it will serve: an in-process call
    that is refused (a test, a script) must not switch the stage's lines to stderr."""
    import pytest

    from lmforge.cli import main
    from lmforge.logconfig import configure

    configure()
    monkeypatch.delenv("LMFORGE_API_KEY", raising=False)
    with pytest.raises(SystemExit, match="no API key"):
        main(["gateway", "--upstream", "http://x", "--store", str(tmp_path / "s")])
    logging.getLogger("lmforge.gates").warning("still here")
    assert capsys.readouterr().out == "WARNING: still here\n"
