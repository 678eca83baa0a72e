"""Command line of ``lmforge serve``, shaped like TGI's ``text-generation-launcher``.

The same flag names (``--model-id``, ``--port``, ``--hostname``, ``--max-input-tokens``,
``--max-total-tokens``, ``--max-concurrent-requests``, ``--max-batch-size``) and, as in
TGI, each may come from the environment variable of the same name (``MODEL_ID``,
``PORT``, …), so the environment written for the TGI container also configures the
local server; that includes TGI's ``--payload-limit`` (bytes of a request body, default
2 MB). Heavy imports (torch, transformers) happen only when the command runs.
"""
from __future__ import annotations

import argparse
import os
import sys

from lmforge.argtypes import LOG_LEVELS, offline_defaults, port_number, positive_int


def _env(name: str, default):
    """The variable's text if set (argparse then applies the flag's type to it, so a bad
    value is a usage error naming the flag), else `default`."""
    return os.environ.get(name) or default


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve", help="local TGI-compatible server (CPU, transformers)",
        description="Serve a model folder with TGI's HTTP API: /generate, /generate_stream, "
                    "/v1/chat/completions, /tokenize, /info, /health, /metrics, ...")
    p.add_argument("--model-id", default=_env("MODEL_ID", "models/release"),
                   help="local model folder (default: models/release; env MODEL_ID)")
    p.add_argument("--hostname", default="127.0.0.1",
                   help="address to bind (TGI binds 0.0.0.0; lmforge defaults to loopback)")
    p.add_argument("--port", type=port_number, default=_env("PORT", 3000), help="port (default 3000; env PORT)")
    p.add_argument("--max-input-tokens", type=int, default=_env("MAX_INPUT_TOKENS", None),
                   help="longest accepted input (default: max-total-tokens - 1)")
    p.add_argument("--max-total-tokens", type=int, default=_env("MAX_TOTAL_TOKENS", None),
                   help="input + generated tokens limit (default: the model's context)")
    p.add_argument("--max-concurrent-requests", type=int, default=_env("MAX_CONCURRENT_REQUESTS", 32),
                   help="requests in flight before answering 429 (default 32)")
    p.add_argument("--max-batch-size", type=int, default=_env("MAX_BATCH_SIZE", 8),
                   help="rows decoded together (default 8)")
    p.add_argument("--batch-wait-ms", type=float, default=_env("LMFORGE_BATCH_WAIT_MS", 5.0),
                   help="when idle, how long a first request waits for others to share its prefill")
    p.add_argument("--payload-limit", type=positive_int, default=_env("PAYLOAD_LIMIT", 2_000_000),
                   help="largest request body in bytes; larger ones get 413 (default 2000000; env PAYLOAD_LIMIT)")
    p.add_argument("--dtype", default=_env("DTYPE", "float32"), help="float32 (default), bfloat16, float16")
    p.add_argument("--batch-kernels", default=_env("LMFORGE_BATCH_KERNELS", "onednn"), choices=("onednn", "torch"),
                   help="products of batched rows: oneDNN on prepacked float32 weights (default; faster, equal to "
                        "float32 rounding, twice the linear weights' memory) or torch's F.linear (bitwise the "
                        "model's forward); one row always takes F.linear")
    p.add_argument("--log-level", default="warning", choices=LOG_LEVELS)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from lmforge.serve.server import ServeError, load_state, serve

    try:
        state = load_state(args.model_id, max_input_tokens=args.max_input_tokens,
                           max_total_tokens=args.max_total_tokens,
                           max_concurrent_requests=args.max_concurrent_requests,
                           max_batch_size=args.max_batch_size, batch_wait_ms=args.batch_wait_ms,
                           payload_limit=args.payload_limit, dtype=args.dtype, batch_kernels=args.batch_kernels)
    except ServeError as e:
        print(f"lmforge serve: {e}", file=sys.stderr)
        return 2
    print(f"lmforge serve: {args.model_id} on http://{args.hostname}:{args.port} "
          f"(max_input_tokens={state.limits.max_input_tokens}, max_total_tokens={state.limits.max_total_tokens}, "
          f"max_batch_size={state.limits.max_batch_size})", file=sys.stderr, flush=True)
    serve(state, args.hostname, args.port, args.log_level)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m lmforge.serve.cli serve ...``: this command alone (the launcher's subprocess),
    without loading every other subcommand of ``lmforge``."""
    offline_defaults()
    parser = argparse.ArgumentParser(prog="lmforge")
    add_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
