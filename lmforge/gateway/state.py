"""The gateway's shared state: config, API keys, store writer, upstream client, indexes.

The app factory (gateway.py: auth, feedback, review, the page) and the generation
routes (proxy.py) both work on one ``GatewayState``; it lives here, below both, so
neither route module imports the other.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request

from lmforge.config import require
from lmforge.gateway.metrics import GatewayMetrics
from lmforge.pii import find_pii
from lmforge.gateway.review import DocIndex
from lmforge.feedback.store import REQUESTS, REVIEW_LABELS, StoreWriter, read_jsonl
from lmforge.gateway.upstream import UpstreamClient, UpstreamUnavailable
from lmforge.serve.http import ApiError, read_json

log = logging.getLogger(__name__)
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
    upstream_timeout_s: int = 120  # overall deadline of one upstream call, a whole stream included
    max_body_bytes: int = 1_000_000
    max_upstream_bytes: int = 8_000_000  # an upstream reply (or one stream event) past this is a 502
    max_log_chars: int = 200_000  # per text field of a log line; longer text is cut and the line says so
    info_refresh_s: float = 30.0  # re-read the upstream's /info at least this often (model provenance)

    def __post_init__(self) -> None:
        require(self.cost_per_1k_input_tokens >= 0, "gateway.cost_per_1k_input_tokens: must be >= 0")
        require(self.cost_per_1k_output_tokens >= 0, "gateway.cost_per_1k_output_tokens: must be >= 0")
        require(self.upstream_timeout_s > 0, "gateway.upstream_timeout_s: must be > 0")
        require(self.max_body_bytes > 0, "gateway.max_body_bytes: must be > 0")
        require(self.max_upstream_bytes > 0, "gateway.max_upstream_bytes: must be > 0")
        require(self.max_log_chars >= 1000, "gateway.max_log_chars: must be >= 1000")
        require(self.info_refresh_s > 0, "gateway.info_refresh_s: must be > 0")


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
        self.model_at = 0.0  # monotonic time of the last /info read
        self.stale = False  # a failed call or another model in the reply headers: re-read /info
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
        await asyncio.to_thread(find_pii, "warm up 0")  # load the detector now, not on the first request
        self.client = UpstreamClient(self.upstream_url, timeout=self.cfg.upstream_timeout_s,
                                     max_bytes=self.cfg.max_upstream_bytes)
        await self.model_info()

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self.writer is not None:
            self.writer.close()

    def _changed(self) -> bool:
        """The upstream now serves another model than the one last read (its reply headers say so)."""
        served, m = self.client.served if self.client else None, self.model or {}
        return served is not None and served != (m.get("model_id"), m.get("model_sha") or "unknown")

    async def model_info(self) -> dict:
        """Upstream ``/info`` or ``/v1/models``, re-read when it may have changed: never read yet, a
        failed upstream call since, another model named in a reply's headers, or older than
        ``info_refresh_s``. While the upstream is down the last answer stands."""
        due = self.model is None or self.stale or self._changed() or \
            time.monotonic() - self.model_at > self.cfg.info_refresh_s
        if due:
            try:
                info = await self.client.info()
            except UpstreamUnavailable as e:
                log.warning("upstream /info not available: %s", e)
                self.stale = True
                return self.model or {"model_id": None, "model_sha": None, "version": None, "model_version": None}
            self.model, self.model_at, self.stale = info, time.monotonic(), False
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

    def cut(self, rec: dict) -> dict:
        """``rec`` with every text over ``max_log_chars`` cut, and ``cut`` naming what was cut (a
        150 MB upstream reply must not become a 150 MB log line)."""
        n, cut = self.cfg.max_log_chars, []
        for k in ("prompt", "completion", "error"):
            v = rec.get(k)
            if isinstance(v, str) and len(v) > n:
                rec[k] = v[:n]
                cut.append(k)
        msgs = rec.get("messages")
        if isinstance(msgs, list) and sum(len(str(m.get("content"))) for m in msgs) > n:
            each = max(100, n // max(1, len(msgs)))
            rec["messages"] = [{**m, "content": str(m.get("content"))[:each]} for m in msgs[:1000]]
            cut.append("messages")
        params = rec.get("parameters")
        if params is not None and len(str(params)) > n:
            rec["parameters"] = {"cut": str(params)[:1000]}
            cut.append("parameters")
        if cut:
            rec["cut"] = cut
        return rec

    def cost(self, input_tokens: int | None, output_tokens: int | None) -> float:
        return round((input_tokens or 0) / 1000 * self.cfg.cost_per_1k_input_tokens
                     + (output_tokens or 0) / 1000 * self.cfg.cost_per_1k_output_tokens, 8)


async def json_body(request: Request, max_bytes: int) -> dict:
    body = await read_json(request, max_bytes)
    if not isinstance(body, dict):
        raise ApiError(422, "the JSON body must be an object")
    return body
