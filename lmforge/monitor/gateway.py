"""``lmforge gateway``: auth, request log, metrics, feedback and a web page in front of TGI.

The gateway is where the model meets its users and where what they say starts
its way back into training data. It sits in front of any TGI endpoint (the
official server on a GPU cluster or ``lmforge serve``) or an OpenAI-only one (vLLM
and TGI's other successors; ``lmforge.monitor.upstream``) and speaks TGI's own API
(``/generate``, ``/generate_stream``, ``/``, ``/v1/chat/completions``), so any
TGI client works through it by adding an API key. What it adds:

* an API key on every write (generation and feedback both write the store) and,
  with ``gateway.auth_reads``, on reads too; the key comes from ``LMFORGE_API_KEY``
  or a key file, never the command line (it would show in ``ps``);
* one JSONL line per request in the feedback store (``lmforge.monitor.store``):
  prompt, completion, latency, input/output tokens, a cost estimate, a safety
  verdict (``lmforge.monitor.safety``) and the model version from upstream ``/info``
  (TGI) or ``/v1/models`` (an OpenAI-only upstream such as vLLM);
  each line is fsynced before the reply, so an answer the user saw is in the log;
* ``POST /feedback`` (thumbs up/down, or a choice between two logged completions)
  and the data review API, with the same durability;
* its own Prometheus metrics on ``/metrics``, and the chat + review page on ``/``;
* the same defences as ``lmforge serve`` (``lmforge.serve.http``): a body over
  ``gateway.max_body_bytes`` is refused with 413 while it streams in, and a body that is
  not strict JSON (NaN, lone surrogates, deep nesting) is a 422, never a 5xx.

Generation routes live in ``lmforge.monitor.proxy``; this module holds the app,
auth, feedback and review.
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lmforge.config import require
from lmforge.monitor.metrics import GatewayMetrics
from lmforge.monitor.review import SETS, DocIndex
from lmforge.monitor.store import FEEDBACK, REQUESTS, REVIEW_LABELS, StoreWriter, read_jsonl
from lmforge.monitor.upstream import UpstreamClient, UpstreamUnavailable
from lmforge.serve.http import ApiError, exception_handlers, read_json

log = logging.getLogger(__name__)
WEB = Path(__file__).parent / "web"
KEY_ENV = "LMFORGE_API_KEY"


@dataclass
class GatewayConfig:
    """params.yaml ``gateway`` section."""

    store: str = "data/feedback_live"
    data_dir: str = "data"  # holds curated/ and rejected/ for the review view
    auth_reads: bool = False  # writes always need a key; reads only when this is true
    block_unsafe: bool = True  # refuse requests the safety blocklist matches (400)
    cost_per_1k_input_tokens: float = 0.0005
    cost_per_1k_output_tokens: float = 0.0015
    upstream_timeout_s: int = 120
    max_body_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        require(self.cost_per_1k_input_tokens >= 0, "gateway.cost_per_1k_input_tokens: must be >= 0")
        require(self.cost_per_1k_output_tokens >= 0, "gateway.cost_per_1k_output_tokens: must be >= 0")
        require(self.upstream_timeout_s > 0, "gateway.upstream_timeout_s: must be > 0")
        require(self.max_body_bytes > 0, "gateway.max_body_bytes: must be > 0")


def load_api_keys(key_file: str | None = None) -> set[str]:
    """Keys from ``LMFORGE_API_KEY`` (comma-separated) and/or a file (one per line)."""
    keys = {k.strip() for k in os.environ.get(KEY_ENV, "").split(",") if k.strip()}
    if key_file:
        p = Path(key_file)
        if not p.is_file():
            raise ValueError(f"--api-key-file {p}: no such file")
        keys |= {ln.strip() for ln in p.read_text().splitlines()
                 if ln.strip() and not ln.strip().startswith("#")}
    if not keys:
        raise ValueError(f"no API key: set {KEY_ENV} or pass --api-key-file "
                         "(writes always need a key, so the gateway will not start without one)")
    return keys


def new_id() -> str:
    return uuid.uuid4().hex


def prompt_key(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


class GatewayState:
    """Everything the routes share: config, keys, store writer, upstream, indexes."""

    def __init__(self, cfg: GatewayConfig, upstream: str, api_keys: set[str]):
        self.cfg = cfg
        self.upstream_url = upstream
        self._keys = [k.encode() for k in api_keys]
        self.metrics = GatewayMetrics()
        self.docs = DocIndex(cfg.data_dir)
        self.model: dict | None = None
        self.writer: StoreWriter | None = None
        self.client: UpstreamClient | None = None
        self.requests: dict[str, tuple[str, bool]] = {}  # request id -> (prompt key, succeeded)
        self.labels: dict[str, str] = {}  # doc id -> latest review label

    def open_store(self) -> None:
        """Take the store (and its lock); the CLI calls this before serving, so an unusable
        store is a one-line error rather than a failed start-up."""
        if self.writer is None:
            self.writer = StoreWriter(self.cfg.store, on_commit=self.metrics.on_commit)

    async def start(self) -> None:
        self.open_store()
        for r in read_jsonl(self.writer.root / REQUESTS):
            self.requests[r["id"]] = (prompt_key(r.get("prompt") or ""), r.get("status") == 200)
        for r in read_jsonl(self.writer.root / REVIEW_LABELS):
            self.labels[r["doc_id"]] = r["label"]
        self.client = UpstreamClient(self.upstream_url, timeout=self.cfg.upstream_timeout_s)
        await self.model_info()

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self.writer is not None:
            self.writer.close()

    async def model_info(self) -> dict:
        """Upstream ``/info`` or ``/v1/models``, fetched once (retried while upstream is down)."""
        if self.model is None:
            try:
                info = await self.client.info()
            except UpstreamUnavailable as e:
                log.warning("upstream /info not available yet: %s", e)
                return {"model_id": None, "model_sha": None, "version": None, "model_version": None}
            self.model = info
        return self.model

    def authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else \
            request.headers.get("x-api-key", "")
        given_b = given.encode()
        ok = False
        for k in self._keys:  # compare with every key, in constant time
            ok |= hmac.compare_digest(given_b, k)
        return ok

    def check_auth(self, request: Request, write: bool) -> None:
        if (write or self.cfg.auth_reads) and not self.authorized(request):
            self.metrics.auth_failures.inc()
            raise ApiError(401, "missing or invalid API key (Authorization: Bearer <key>)",
                           "authentication")

    def cost(self, input_tokens: int | None, output_tokens: int | None) -> float:
        return round((input_tokens or 0) / 1000 * self.cfg.cost_per_1k_input_tokens
                     + (output_tokens or 0) / 1000 * self.cfg.cost_per_1k_output_tokens, 8)


async def json_body(request: Request, max_bytes: int) -> dict:
    body = await read_json(request, max_bytes)
    if not isinstance(body, dict):
        raise ApiError(422, "the JSON body must be an object")
    return body


def _state(request: Request) -> GatewayState:
    return request.app.state.gw


def _str_field(body: dict, key: str, required: bool = True, choices: tuple | None = None) -> str | None:
    v = body.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, str) or not v:
        raise ApiError(422, f"`{key}` must be a non-empty string")
    if choices and v not in choices:
        raise ApiError(422, f"`{key}` must be one of {list(choices)}, got {v!r}")
    return v


async def feedback(request: Request) -> Response:
    """Thumbs up/down on a logged completion, or a choice between two of them."""
    gw = _state(request)
    gw.check_auth(request, write=True)
    body = await json_body(request, gw.cfg.max_body_bytes)
    rec = {"id": new_id(), "ts": time.time(), "comment": body.get("comment"),
           "correction": body.get("correction")}
    for k in ("comment", "correction"):
        if rec[k] is not None and not isinstance(rec[k], str):
            raise ApiError(422, f"`{k}` must be a string")

    def known(rid: str) -> tuple[str, bool]:
        if rid not in gw.requests:
            raise ApiError(404, f"no logged request with id {rid!r}", "not_found")
        if not gw.requests[rid][1]:
            raise ApiError(422, f"request {rid!r} did not produce a completion")
        return gw.requests[rid]

    if "chosen" in body or "rejected" in body:
        chosen, rejected = _str_field(body, "chosen"), _str_field(body, "rejected")
        if chosen == rejected:
            raise ApiError(422, "`chosen` and `rejected` must be different requests")
        if known(chosen)[0] != known(rejected)[0]:
            raise ApiError(422, "`chosen` and `rejected` must answer the same prompt")
        rec.update(kind="pairwise", chosen=chosen, rejected=rejected)
        kind = "pairwise"
    else:
        rid = _str_field(body, "request_id")
        rating = _str_field(body, "rating", choices=("up", "down"))
        known(rid)
        rec.update(kind="rating", request_id=rid, rating=rating)
        kind = rating
    await gw.writer.append_async(FEEDBACK, rec)
    gw.metrics.feedback.labels(kind).inc()
    return JSONResponse({"id": rec["id"], "ok": True})


async def review_docs(request: Request) -> Response:
    gw = _state(request)
    gw.check_auth(request, write=False)
    q = request.query_params
    which = q.get("set", "rejected")
    if which not in SETS:
        raise ApiError(422, f"`set` must be one of {list(SETS)}")
    try:
        offset, limit = int(q.get("offset", 0)), int(q.get("limit", 20))
    except ValueError as e:
        raise ApiError(422, "`offset` and `limit` must be integers") from e
    if offset < 0 or not 0 < limit <= 200:
        raise ApiError(422, "need offset >= 0 and 0 < limit <= 200")
    return JSONResponse(gw.docs.page(which, offset, limit, q.get("reason") or None, gw.labels))


async def review_label(request: Request) -> Response:
    gw = _state(request)
    gw.check_auth(request, write=True)
    body = await json_body(request, gw.cfg.max_body_bytes)
    doc_id = _str_field(body, "doc_id")
    label = _str_field(body, "label", choices=("keep", "drop"))
    which = _str_field(body, "set", choices=SETS)
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        raise ApiError(422, "`note` must be a string")
    if not gw.docs.has(which, doc_id):
        raise ApiError(404, f"no document {doc_id!r} in data/{which}", "not_found")
    rec = {"id": new_id(), "ts": time.time(), "doc_id": doc_id, "label": label, "set": which,
           "note": note}
    await gw.writer.append_async(REVIEW_LABELS, rec)
    gw.labels[doc_id] = label
    gw.metrics.feedback.labels(f"review_{label}").inc()
    return JSONResponse({"id": rec["id"], "ok": True})


async def info(request: Request) -> Response:
    gw = _state(request)
    gw.check_auth(request, write=False)
    return JSONResponse({**await gw.model_info(), "gateway": {"upstream": gw.upstream_url}})


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    gw = _state(request)
    gw.check_auth(request, write=False)
    return Response(generate_latest(gw.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def index(request: Request) -> Response:
    return FileResponse(WEB / "index.html", media_type="text/html")


def create_app(cfg: GatewayConfig, upstream: str, api_keys: set[str]) -> Starlette:
    from lmforge.monitor import proxy

    gw = GatewayState(cfg, upstream, api_keys)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await gw.start()
        try:
            yield
        finally:
            await gw.stop()

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/", proxy.compat, methods=["POST"]),
        Route("/generate", proxy.generate, methods=["POST"]),
        Route("/generate_stream", proxy.generate_stream, methods=["POST"]),
        Route("/v1/chat/completions", proxy.chat, methods=["POST"]),
        Route("/feedback", feedback, methods=["POST"]),
        Route("/api/review/docs", review_docs, methods=["GET"]),
        Route("/api/review/label", review_label, methods=["POST"]),
        Route("/info", info, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Mount("/static", StaticFiles(directory=WEB), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=exception_handlers())
    app.state.gw = gw
    return app
