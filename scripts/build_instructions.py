"""Build the committed instruction sample ``data/instructions/pairs.parquet``.

Run by hand (not a DVC stage: its inputs are the machine's installed packages, which
DVC cannot version), then commit the result; the ``instructions`` stage checks and
splits it. Sources: perlfaq (Debian ``perl-doc``), the Python FAQ (``python3.11-doc``),
man-page NAME/DESCRIPTION lines, stdlib docstrings, and the hand-written refusal
examples in ``data/instructions/refusals.jsonl`` (CC0-1.0, written for lmforge).

    .venv/bin/python scripts/build_instructions.py [--out data/instructions/pairs.parquet]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lmforge.builders import sources  # noqa: E402
from lmforge.io import atomic_path  # noqa: E402

DOC_MODULES = ["shutil", "os.path", "json", "itertools", "functools", "collections", "re", "pathlib",
               "textwrap", "string", "math", "statistics", "random", "datetime", "csv", "glob",
               "fnmatch", "tempfile", "hashlib", "base64", "heapq", "bisect", "operator", "difflib",
               "zipfile", "tarfile", "gzip", "subprocess", "argparse", "logging", "urllib.parse",
               "html", "unicodedata", "uuid", "decimal", "fractions", "copy", "pprint", "inspect",
               "contextlib", "dataclasses", "enum", "typing", "shlex", "time", "calendar", "sqlite3"]
REFUSAL_LICENCE = "CC0-1.0 (written for lmforge)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/instructions/pairs.parquet")
    ap.add_argument("--refusals", default="data/instructions/refusals.jsonl")
    ap.add_argument("--perl-pod", default="/usr/share/perl/5.36.0/pod")
    ap.add_argument("--python-faq", default="/usr/share/doc/python3.11/html/faq")
    ap.add_argument("--man", default="/usr/share/man")
    ap.add_argument("--man-limit", type=int, default=1200)
    ap.add_argument("--doc-limit", type=int, default=1500)
    ap.add_argument("--max-chars", type=int, default=2000)
    args = ap.parse_args(argv)

    steps = {k: sources.Counter(k) for k in ("perlfaq", "python_faq", "manpages", "docstrings", "refusals")}
    rows = []
    rows += sources.perlfaq(args.perl_pod, args.max_chars, steps["perlfaq"])
    rows += sources.python_faq(args.python_faq, args.max_chars, steps["python_faq"])
    rows += sources.man_pages(args.man, args.man_limit, args.max_chars, steps["manpages"])
    rows += sources.docstrings(DOC_MODULES, args.doc_limit, args.max_chars, steps["docstrings"])
    for i, line in enumerate(Path(args.refusals).read_text().splitlines()):
        r = json.loads(line)
        if sources._ok(steps["refusals"], r["prompt"], r["response"], args.max_chars):
            rows.append(dict(prompt=r["prompt"], response=r["response"], source="refusal",
                             licence=REFUSAL_LICENCE, origin=f"{args.refusals}:{i + 1}"))

    df = pd.DataFrame(rows, columns=["prompt", "response", "source", "licence", "origin"])
    before = len(df)
    df = df.drop_duplicates("prompt", keep="first").reset_index(drop=True)
    with atomic_path(args.out) as tmp:
        df.to_parquet(tmp, index=False)
    print(pd.DataFrame([s.row() for s in steps.values()]).fillna(0).to_string(index=False))
    print(f"duplicate prompts dropped: {before - len(df)}")
    print(f"wrote {len(df)} pairs to {args.out} ({Path(args.out).stat().st_size / 1e6:.2f} MB)")
    print(df.groupby("source").size().to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
