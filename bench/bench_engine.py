"""Benchmark: the serving engine without HTTP, against the libraries that could replace it.

In one process, on models/release (or a small random Llama when it does not exist),
with the same prompts and greedy max_new_tokens, rounds interleaved so machine load
hits every contender alike, medians printed:
1. lmforge's `Engine` sequentially (one request at a time) and with 8 in flight: the
   batching ratio without HTTP in the way (goal >= 3x);
2. transformers 5's continuous batching (`model.generate_batch`, paged cache sized
   for the workload) on the same 8 prompts: lmforge / transformers throughput;
3. incremental detokenisation: `tokenizers.decoders.DecodeStream` (what
   `IncrementalDecoder` now wraps) against the former Python prefix/read-offset loop,
   checked to produce the same text, in microseconds per token.

    .venv/bin/python bench/bench_engine.py [--model-id DIR] [--rows 8] [--max-new-tokens 32] [--rounds 3]
        [--step lean|forward] [--batch-kernels onednn|torch]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import _support  # noqa: F401 - first: this checkout's lmforge on sys.path (bench/_support.py)

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, ContinuousBatchingConfig, GenerationConfig  # noqa: E402

from lmforge.serve.engine import Engine, Generation  # noqa: E402
from lmforge.serve.sampling import IncrementalDecoder, SamplingParams  # noqa: E402

PROMPTS = ["What is Debian?", "Python is a programming language that", "The quick brown fox",
           "Hello, how are you today?", "A package manager installs", "Tell me about the weather in",
           "Write a short poem about", "Explain what an operating system kernel is."]


class OffsetsDecoder:
    """The former pure-Python incremental decoder (TGI's prefix/read offsets): the baseline."""

    def __init__(self, tokenizer):
        self.tok, self.ids, self.prefix_offset, self.read_offset = tokenizer, [], 0, 0

    def step(self, token_id: int) -> str:
        self.ids.append(token_id)
        prefix = self.tok.decode(self.ids[self.prefix_offset:self.read_offset])
        new = self.tok.decode(self.ids[self.prefix_offset:])
        if len(new) > len(prefix) and not new.endswith("\ufffd"):
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
            return new[len(prefix):]
        return ""


def engine_run(engine: Engine, prompts: list[list[int]], new: int, concurrent: bool,
               cpu: list[float] | None = None) -> float:
    """Generated tokens/s of the engine thread answering `prompts` all at once or one after another;
    appends the process's CPU ms per token to `cpu` (a figure a shared machine's load moves less)."""
    tokens = [0]
    cpu0 = time.process_time()

    def one_batch(batch):
        left, done = [len(batch)], threading.Event()

        def emit(event):
            finish = getattr(event, "finish", None)
            if finish is not None or not hasattr(event, "finish"):  # finished, or an ErrorEvent
                tokens[0] += finish.generated_tokens if finish is not None else 0
                left[0] -= 1
                if left[0] == 0:
                    done.set()
        for ids in batch:
            engine.submit(Generation(ids, SamplingParams(max_new_tokens=new), emit=emit, stream=False))
        done.wait(600)

    t0 = time.perf_counter()
    for batch in ([prompts] if concurrent else [[p] for p in prompts]):
        one_batch(batch)
    if cpu is not None:
        cpu.append(1000 * (time.process_time() - cpu0) / max(1, tokens[0]))
    return tokens[0] / (time.perf_counter() - t0)


def library_run(model, prompts: list[list[int]], new: int, tok) -> float:
    """Generated tokens/s of `generate_batch` on the same prompts (greedy, stopping at the same eos)."""
    gc = GenerationConfig(max_new_tokens=new, do_sample=False, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id)
    cbc = ContinuousBatchingConfig(page_size=32, num_blocks=len(prompts) * 4, max_batch_tokens=256,
                                   max_requests_per_batch=len(prompts))
    t0 = time.perf_counter()
    out = model.generate_batch(prompts, generation_config=gc, continuous_batching_config=cbc, warmup=False)
    tokens = sum(len(o.generated_tokens) for o in out.values())
    return tokens / (time.perf_counter() - t0)


def detok_us(tok, sequences: list[list[int]]) -> tuple[float, float]:
    """µs per token of the baseline and of IncrementalDecoder; both must give the same text."""
    times = []
    for make in (lambda: OffsetsDecoder(tok), lambda: IncrementalDecoder(tok, set())):
        texts, t0 = [], time.perf_counter()
        for ids in sequences:
            d = make()
            texts.append("".join(d.step(i) if isinstance(d, OffsetsDecoder) else d.step(i)[0] for i in ids))
        times.append((time.perf_counter() - t0) * 1e6 / sum(map(len, sequences)))
        if len(times) == 1:
            reference = texts
    assert texts == reference, "DecodeStream and the offsets loop disagree"
    return times[0], times[1]


def load(args, tmp: str):
    path = Path(args.model_id or "models/release")
    if not (path / "config.json").exists():
        from lmforge.testing.tiny_model import build_tiny_model
        print("(models/release not found: random Llama, hidden 256, 4 layers)")
        path = build_tiny_model(Path(tmp) / "model", hidden_size=256, layers=4)
    tok = AutoTokenizer.from_pretrained(path)
    # two copies: generate_batch switches its model's attention to a paged kind and leaves it so
    return path, tok, *(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval() for _ in range(2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-id")
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--step", choices=("lean", "forward"), default="lean",
                    help="decode step: fast_decode's lean step (default) or the model's own forward")
    ap.add_argument("--batch-kernels", choices=("onednn", "torch"), default="onednn",
                    help="the lean step's products for batches (serve's --batch-kernels)")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    with tempfile.TemporaryDirectory() as tmp:
        path, tok, model, library_model = load(args, tmp)
        prompts = [tok(PROMPTS[i % len(PROMPTS)])["input_ids"] for i in range(args.rows)]
        engine = Engine(model, tok, max_batch_size=args.rows, batch_wait_ms=5, step=args.step,
                        batch_kernels=args.batch_kernels).start()
        engine_run(engine, prompts[:2], 4, concurrent=True)  # warm-up
        library_run(library_model, prompts[:2], 4, tok)
        runs: dict[str, list[float]] = {"sequential": [], "concurrent": [], "generate_batch": []}
        cpu: dict[str, list[float]] = {"sequential": [], "concurrent": []}
        for _ in range(args.rounds):
            runs["sequential"].append(engine_run(engine, prompts, args.max_new_tokens, False, cpu["sequential"]))
            runs["concurrent"].append(engine_run(engine, prompts, args.max_new_tokens, True, cpu["concurrent"]))
            runs["generate_batch"].append(library_run(library_model, prompts, args.max_new_tokens, tok))
        engine.stop()
        med = {k: statistics.median(v) for k, v in runs.items()}
        print(f"model: {path}  rows: {args.rows}  max_new_tokens: {args.max_new_tokens}  rounds: {args.rounds}  "
              f"threads: {torch.get_num_threads()}  step: {args.step}")
        for k, v in runs.items():
            per = f"   CPU {statistics.median(cpu[k]):.2f} ms/token" if k in cpu else ""
            print(f"  {k:<15}: median {med[k]:7.1f} tok/s   rounds {[round(x, 1) for x in v]}{per}")
        print(f"  lmforge Engine, {args.rows} in flight / sequential: {med['concurrent'] / med['sequential']:.2f}x"
              "  (goal >= 3x)")
        print(f"  lmforge Engine / transformers generate_batch, {args.rows} in flight: "
              f"{med['concurrent'] / med['generate_batch']:.2f}x")
        sequences = [tok(" ".join(PROMPTS[i:] + PROMPTS[:i]) + " Grüße aus Köln, naïve 😀")["input_ids"]
                     for i in range(len(PROMPTS))] * 25
        base, lib = detok_us(tok, sequences)
        print(f"  detokenise: offsets loop {base:.1f} us/token, DecodeStream {lib:.1f} us/token "
              f"({base / lib:.1f}x faster), same text")


if __name__ == "__main__":
    main()
