"""Command line of ``lmforge gateway``.

``lmforge gateway --upstream URL --port N`` puts the gateway in front of a TGI
endpoint. Settings come from params.yaml's ``gateway`` section when the file is
there (the run-from-the-repo case), flags override the store and data folders.
The API key is read from ``LMFORGE_API_KEY`` or ``--api-key-file`` only: a key on
the command line would be visible to every user of the machine in ``ps``. A user
error (a bad flag or params value, no key, a store that is unusable or already held
by another gateway) ends the command with one line naming it, never a traceback.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from lmforge.argtypes import LOG_LEVELS, port_number
from lmforge.config import ParamsError, build, load_params
from lmforge.logconfig import configure


class _RefuseKeyArgument(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        parser.error("the API key is never taken from the command line (other users see it in ps); "
                     "set LMFORGE_API_KEY or pass --api-key-file")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "gateway", help="API-key gateway with request log, metrics, feedback and a web page",
        description="Serve a TGI-compatible API in front of --upstream, logging every request "
                    "and feedback to the feedback store. The API key comes from $LMFORGE_API_KEY "
                    "or --api-key-file.",
        allow_abbrev=False)  # `--api-key SECRET` must not silently mean `--api-key-file SECRET`
    p.add_argument("--upstream", required=True, help="base URL of a TGI endpoint (or lmforge serve)")
    p.add_argument("--port", type=port_number, default=8080)
    p.add_argument("--hostname", default="127.0.0.1")
    p.add_argument("--api-key-file", help="file with the API key(s), one per line")
    p.add_argument("--api-key", "--key", nargs="?", action=_RefuseKeyArgument, help=argparse.SUPPRESS)
    p.add_argument("--store", help="feedback store folder (default: params gateway.store)")
    p.add_argument("--data-dir", help="folder holding curated/ and rejected/ for the review view")
    p.add_argument("--params", default=None, help="params file (default: $LMFORGE_PARAMS or params.yaml)")
    p.add_argument("--log-level", default="warning", choices=LOG_LEVELS)
    p.set_defaults(func=run)
    return p


def config_from(args) -> "GatewayConfig":  # noqa: F821
    from lmforge.gateway.state import GatewayConfig

    path = args.params or os.environ.get("LMFORGE_PARAMS", "params.yaml")
    data = {}
    if Path(path).exists():
        data = dict(load_params(path).get("gateway") or {})
    elif args.params:
        raise ParamsError(f"{path}: parameter file not found")
    if args.store:
        data["store"] = args.store
    if args.data_dir:
        data["data_dir"] = args.data_dir
    return build(GatewayConfig, data, f"{path}: gateway")


def run(args) -> int:
    import uvicorn

    from lmforge.gateway.app import create_app
    from lmforge.gateway.state import load_api_keys

    try:
        cfg = config_from(args)
        app = create_app(cfg, args.upstream, load_api_keys(args.api_key_file))
        app.state.gw.open_store()  # before serving: a store in use is a refusal, not a failed start-up
    except (ValueError, OSError) as e:  # ParamsError and StoreError included: name the problem, no traceback
        raise SystemExit(f"lmforge gateway: error: {e}") from None
    configure(args.log_level, server=True)   # a refused start leaves the process's logging alone
    print(f"lmforge gateway: http://{args.hostname}:{args.port} -> {args.upstream} "
          f"(store {cfg.store})", flush=True)
    uvicorn.run(app, host=args.hostname, port=args.port, log_level=args.log_level,
                access_log=False, timeout_graceful_shutdown=5)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lmforge")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
