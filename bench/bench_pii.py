"""Personal-data detector: recall and false alarms on the labelled set of formats in the wild.

The labelled set is tests/gateway/data/pii_wild.jsonl (each line: a text and the kinds of
personal data in it; texts without any are the false-alarm check). The detector is
``lmforge.pii.find_pii``; the baseline, measured in the same run on the same texts, is the
hand-grown regex detector it replaced (``lmforge/gateway/safety.py`` at a git revision,
default 906d19b, loaded from git into a scratch module), so the printed ratios compare the two.

    .venv/bin/python bench/bench_pii.py [--baseline-rev 906d19b]
"""
from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import time
import types

from _support import REPO  # first: this checkout's lmforge on sys.path (bench/_support.py)

from lmforge.pii import find_pii  # noqa: E402

DATA = REPO / "tests" / "gateway" / "data" / "pii_wild.jsonl"


def baseline(rev: str):
    src = subprocess.run(["git", "show", f"{rev}:lmforge/gateway/safety.py"], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    mod = sys.modules["old_safety"] = types.ModuleType("old_safety")
    exec(compile(src, "old_safety.py", "exec"), mod.__dict__)  # noqa: S102 - our own code at `rev`
    return mod.find_pii


def score(detect, rows) -> dict:
    per_kind, hits, alarms = collections.Counter(), collections.Counter(), 0
    t0 = time.perf_counter()
    for r in rows:
        got = set(detect(r["text"]))
        for k in r["kinds"]:
            per_kind[k] += 1
            hits[k] += k in got
        alarms += not r["kinds"] and bool(got)
    dt = (time.perf_counter() - t0) / len(rows)
    pos = sum(per_kind.values())
    return {"recall": sum(hits.values()) / pos, "per_kind": {k: f"{hits[k]}/{n}" for k, n in sorted(per_kind.items())},
            "false_alarms": alarms, "negatives": sum(1 for r in rows if not r["kinds"]), "ms_per_text": dt * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-rev", default="906d19b")
    args = ap.parse_args()
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    find_pii("warm 0")
    new, old = score(find_pii, rows), score(baseline(args.baseline_rev), rows)
    for name, s in (("lmforge.pii", new), (f"regexes@{args.baseline_rev}", old)):
        print(f"{name:22s} recall {s['recall']:.3f}  false alarms {s['false_alarms']}/{s['negatives']}  "
              f"{s['ms_per_text']:.2f} ms/text  {s['per_kind']}")
    print(f"recall ratio new/old: {new['recall'] / old['recall']:.2f}x; "
          f"time ratio new/old: {new['ms_per_text'] / old['ms_per_text']:.0f}x")


if __name__ == "__main__":
    main()
