"""Build the committed evaluation data ``evals/data/*.jsonl`` for the tasks in ``evals/tasks/``.

Run by hand (not a DVC stage: like scripts/build_instructions.py its inputs are the machine's
installed packages, which DVC cannot version), then commit the result. Deterministic: the same
machine and seed give the same bytes. Needs Debian ``man-db`` pages under /usr/share/man (each
item names its package), ``python3.11-doc`` and Python 3.11's stdlib. Docstrings of modules the
SFT pairs use and documents in data/sample are left out (lmforge/builders/items.py).

    .venv/bin/python scripts/build_evals.py [--out evals/data] [--seed 1337] [--n 600]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lmforge.align.instructions import InstructionsConfig  # noqa: E402
from lmforge.config import section  # noqa: E402
from lmforge.builders import items  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="evals/data")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--n", type=int, default=600, help="items per multiple-choice task")
    ap.add_argument("--bpb-docs", type=int, default=120)
    ap.add_argument("--bpb-max-chars", type=int, default=2500)
    ap.add_argument("--man", default="/usr/share/man")
    ap.add_argument("--pydoc-sources", default="/usr/share/doc/python3.11/html/_sources")
    ap.add_argument("--crawl", default="data/sample/crawl/pydoc*")
    ap.add_argument("--pairs", default="data/instructions/pairs.parquet")
    ap.add_argument("--refusals", default="data/instructions/refusals.jsonl")
    args = ap.parse_args(argv)

    sft = items.sft_origins(args.pairs)
    safety = section(InstructionsConfig, "instructions").safety_fraction
    tasks = {
        "manpages_mc": items.multiple_choice(items.man_facts(args.man), args.n, args.seed, "manpages_mc"),
        "docstrings_mc": items.multiple_choice(items.docstring_facts(items.DOCSTRING_MODULES, sft), args.n,
                                               args.seed, "docstrings_mc"),
        "pydoc_bpb": items.pydoc_documents(args.pydoc_sources, items.crawled_pydoc_pages(args.crawl),
                                           args.bpb_docs, args.bpb_max_chars),
        "refusal": items.refusal_prompts(args.refusals, safety),
    }
    for name, rows in tasks.items():
        path = Path(args.out) / f"{name}.jsonl"
        items.write_jsonl(path, rows)
        print(f"{name}: {len(rows)} items -> {path} ({path.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
