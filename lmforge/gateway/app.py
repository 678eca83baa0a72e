"""``lmforge gateway``: auth, request log, metrics, feedback and a web page in front of TGI.

The gateway is where the model meets its users and where what they say starts
its way back into training data. It sits in front of any TGI endpoint (the
official server on a GPU cluster or ``lmforge serve``) or an OpenAI-only one (vLLM
and TGI's other successors; ``lmforge.gateway.upstream``) and speaks TGI's own API
(``/generate``, ``/generate_stream``, ``/``) and OpenAI's (``/v1/chat/completions``,
``/v1/completions``, ``/v1/models``; ``oai_routes``), so any TGI or OpenAI client works
through it by adding an API key. What it adds:

* an API key on every write (generation and feedback both write the store) and,
  with ``gateway.auth_reads``, on reads too; the key comes from ``LMFORGE_API_KEY``
  or a key file, never the command line (it would show in ``ps``);
* one JSONL line per request in the feedback store (``lmforge.feedback.store``):
  prompt, completion, latency, input/output tokens, a cost estimate, a safety
  verdict (``lmforge.gateway.safety``) and the model version from upstream ``/info``
  (TGI) or ``/v1/models`` (an OpenAI-only upstream such as vLLM);
  each line is fsynced before the reply, so an answer the user saw is in the log;
* ``POST /feedback`` (thumbs up/down, or a choice between two logged completions)
  and the data review API, with the same durability;
* its own Prometheus metrics on ``/metrics``, and the chat + review page on ``/`` (with a
  Content-Security-Policy and no framing);
* ``/health`` (liveness: the gateway answers) and ``/ready`` (readiness: 503 while the
  upstream is down);
* the same defences as ``lmforge serve`` (``lmforge.serve.http``): a body over
  ``gateway.max_body_bytes`` is refused with 413 while it streams in, and a body that is
  not strict JSON (NaN, lone surrogates, deep nesting) is a 422, never a 5xx.

Generation routes live in ``lmforge.gateway.proxy`` and the state both share in
``lmforge.gateway.state``; this module holds the app factory, feedback and review.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lmforge.gateway.review import SETS
from lmforge.feedback.store import FEEDBACK, REVIEW_LABELS
from lmforge.gateway import oai_routes, proxy
from lmforge.gateway.state import GatewayConfig, GatewayState, json_body, new_id
from lmforge.serve.http import JSON, ApiError, exception_handlers

WEB = Path(__file__).parent / "web"


def _state(request: Request) -> GatewayState:
    return request.app.state.gw


def _short(value: str, n: int = 64) -> str:
    """An id as echoed in an error: at most ``n`` characters of it (a 900 KB id is not echoed whole)."""
    return repr(value) if len(value) <= n else repr(value[:n]) + f"... ({len(value)} characters)"


def _str_field(body: dict, key: str, required: bool = True, choices: tuple | None = None) -> str | None:
    v = body.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, str) or not v:
        raise ApiError(422, f"`{key}` must be a non-empty string")
    if choices and v not in choices:
        raise ApiError(422, f"`{key}` must be one of {list(choices)}, got {_short(v)}")
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
            raise ApiError(404, f"no logged request with id {_short(rid)}", "not_found")
        if not gw.requests[rid][1]:
            raise ApiError(422, f"request {_short(rid)} did not produce a completion")
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
    return JSON({"id": rec["id"], "ok": True})


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
    return JSON(gw.docs.page(which, offset, limit, q.get("reason") or None, gw.labels))


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
        raise ApiError(404, f"no document {_short(doc_id)} in data/{which}", "not_found")
    rec = {"id": new_id(), "ts": time.time(), "doc_id": doc_id, "label": label, "set": which,
           "note": note}
    await gw.writer.append_async(REVIEW_LABELS, rec)
    gw.labels[doc_id] = label
    gw.metrics.feedback.labels(f"review_{label}").inc()
    return JSON({"id": rec["id"], "ok": True})


async def info(request: Request) -> Response:
    gw = _state(request)
    gw.check_auth(request, write=False)
    return JSON({**await gw.model_info(), "gateway": {"upstream": gw.upstream_url}})


async def health(request: Request) -> Response:
    return JSON({"status": "ok"})


async def ready(request: Request) -> Response:
    """Readiness (Kubernetes' readinessProbe, the page's status): 503 while the upstream is down.
    ``/health`` stays liveness: the gateway itself answers, whatever its upstream does."""
    gw = _state(request)
    if await gw.client.ready():
        return JSON({"status": "ready", "upstream": gw.upstream_url})
    gw.stale = True
    return JSON({"status": "upstream_down", "upstream": gw.upstream_url}, status_code=503)


async def metrics(request: Request) -> Response:
    gw = _state(request)
    gw.check_auth(request, write=False)
    return Response(generate_latest(gw.metrics.registry), media_type=CONTENT_TYPE_LATEST)


# The page loads only its own scripts and styles and may not be framed (clickjacking).
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                                           "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                                           "base-uri 'none'; form-action 'self'",
                "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


async def index(request: Request) -> Response:
    return FileResponse(WEB / "index.html", media_type="text/html", headers=PAGE_HEADERS)


def create_app(cfg: GatewayConfig, upstream: str, api_keys: set[str]) -> Starlette:
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
        Route("/v1/chat/completions", oai_routes.chat, methods=["POST"]),
        Route("/v1/completions", oai_routes.completions, methods=["POST"]),
        Route("/v1/models", oai_routes.models, methods=["GET"]),
        Route("/feedback", feedback, methods=["POST"]),
        Route("/api/review/docs", review_docs, methods=["GET"]),
        Route("/api/review/label", review_label, methods=["POST"]),
        Route("/info", info, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Mount("/static", StaticFiles(directory=WEB), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=exception_handlers())
    app.state.gw = gw
    return app
