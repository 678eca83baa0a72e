"""Write the hashed locks from pyproject.toml's ranges: ``requirements.lock`` (the runtime set that
``make repro`` installs) and ``requirements-dev.lock`` (the same versions plus the ``dev`` and
``ray`` extras, what ``make test`` installs). Run by ``make lock``; needs ``uv`` on PATH.

Why a script and not one ``uv pip compile`` line: torch's CPU build lies on these machines as a
local wheel (``2.13.0+cpu``, pip's find-links) while PyPI's Linux wheel of the same version is the
CUDA build. The lock pins ``torch==<version>`` without the local tag and lists the hashes of both,
so ``pip install --require-hashes`` takes the CPU wheel here and PyPI's on a GPU node (README,
"Torch on a GPU node"). Versions already in the locks are kept unless ``--upgrade``.

    python scripts/lock.py [--upgrade] [--find-links /opt/wheels]
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = "3.11"   # the lock's interpreter (CI's); .ci/python312.sh installs the same lock on 3.12
PLATFORM = "x86_64-manylinux_2_28"
HEADER = """\
# {what}. Written by `make lock` (scripts/lock.py: uv pip compile --generate-hashes from
# pyproject.toml's ranges); do not edit by hand. Installed with pip --require-hashes --no-deps.
# torch: the CPU wheel on these machines, PyPI's CUDA build elsewhere (README, "Torch on a GPU node").
"""


def compile_(args: list[str], constraints: Path | None, find_links: str | None) -> str:
    cmd = ["uv", "pip", "compile", "--quiet", "--no-header", "--generate-hashes", "--python-version", PYTHON,
           "--python-platform", PLATFORM, "--no-emit-package", "lmforge", *args]
    if constraints:
        cmd += ["-c", str(constraints)]
    if find_links:
        cmd += ["--find-links", find_links]
    return subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout


def blocks(lock: str) -> dict[str, str]:
    """name -> its block ('name==version \\' + hash lines), without the '# via' comments."""
    out: dict[str, str] = {}
    for block in re.split(r"\n(?=\S)", lock.strip()):
        lines = [ln for ln in block.splitlines() if not ln.lstrip().startswith("#")]
        if lines and "==" in lines[0]:
            out[lines[0].split("==")[0].lower()] = "\n".join(lines).rstrip(" \\")
    return out


def torch_block(version: str, cpu_block: str) -> str:
    """One torch pin without the local tag, with the CPU wheel's hash and PyPI's."""
    pypi = blocks(_compile_stdin(f"torch=={version}"))["torch"]
    hashes = sorted(set(re.findall(r"--hash=sha256:\w+", cpu_block + pypi)))
    return f"torch=={version} \\\n    " + " \\\n    ".join(hashes)


def _compile_stdin(req: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".in") as f:
        f.write(req + "\n")
        f.flush()
        return compile_(["--no-deps", f.name], None, None)


def pins(path: Path) -> str:
    """'name==version' lines of an existing lock, to hold versions still (no hashes)."""
    text = path.read_text() if path.exists() else ""
    return "\n".join(m.group(0) for m in re.finditer(r"^[A-Za-z0-9_.\-]+==[^\s\\;]+", text, re.M)) + "\n"


def write(path: Path, what: str, found: dict[str, str]) -> None:
    body = "\n".join(found[k] for k in sorted(found))
    path.write_text(HEADER.format(what=what) + body + "\n")
    print(f"{path.name}: {len(found)} packages")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upgrade", action="store_true", help="re-resolve to the newest versions the ranges allow")
    ap.add_argument("--find-links", default="/opt/wheels", help="where the local CPU torch wheel lies")
    args = ap.parse_args(argv)
    find_links = args.find_links if Path(args.find_links).is_dir() else None
    with tempfile.TemporaryDirectory() as tmp:
        held = Path(tmp) / "held.txt"
        held.write_text("" if args.upgrade else pins(ROOT / "requirements-dev.lock") + pins(ROOT / "requirements.lock"))
        dev = blocks(compile_(["pyproject.toml", "--extra", "dev", "--extra", "ray"], held, find_links))
        held.write_text(pins_of(dev))
        runtime = blocks(compile_(["pyproject.toml"], held, find_links))
    tv = re.match(r"torch==([^\s+]+)", dev["torch"]).group(1)
    dev["torch"] = runtime["torch"] = torch_block(tv, dev["torch"])
    write(ROOT / "requirements.lock", "The runtime set (`make setup`, `make repro`)", runtime)
    write(ROOT / "requirements-dev.lock", "The runtime set plus the dev and ray extras (`make test`)", dev)
    return 0


def pins_of(found: dict[str, str]) -> str:
    return "\n".join(b.splitlines()[0].rstrip(" \\").split("+")[0] if b.startswith("torch==") else
                     b.splitlines()[0].rstrip(" \\") for b in found.values()) + "\n"


if __name__ == "__main__":
    sys.exit(main())
