"""The gateway's own Prometheus metrics, in a registry of their own.

TGI exports what happens inside the model server (``tgi_queue_size``, batch and
token histograms); the gateway exports what happens at the door: requests by
route and status, end-to-end and upstream latency (their difference is the
gateway's overhead), tokens and estimated cost, safety verdicts, feedback, auth
failures and the store's group commits. A private registry keeps test apps
independent of each other and of anything else in the process.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class GatewayMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        p = "lmforge_gateway"
        self.requests = Counter(f"{p}_requests", "Requests by route and HTTP status",
                                ["route", "status"], registry=r)
        self.duration = Histogram(f"{p}_request_duration_seconds", "End-to-end request latency",
                                  ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.upstream = Histogram(f"{p}_upstream_duration_seconds", "Time spent waiting on upstream",
                                  ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram(f"{p}_time_to_first_token_seconds", "Streams: time to first token",
                              ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.tokens = Counter(f"{p}_tokens", "Tokens through the gateway", ["direction"], registry=r)
        self.cost = Counter(f"{p}_cost", "Estimated cost (params: gateway.cost_per_1k_*)", registry=r)
        self.safety = Counter(f"{p}_safety_verdicts", "Safety verdicts of logged requests",
                              ["verdict"], registry=r)
        self.feedback = Counter(f"{p}_feedback", "Acknowledged feedback by kind", ["kind"], registry=r)
        self.auth_failures = Counter(f"{p}_auth_failures", "Requests refused for a missing/bad key",
                                     registry=r)
        self.inflight = Gauge(f"{p}_inflight_requests", "Generation requests in flight", registry=r)
        self.store_commits = Counter(f"{p}_store_commits", "Group commits (one fsync per file each)",
                                     registry=r)
        self.store_lines = Counter(f"{p}_store_lines", "Lines written to the feedback store", registry=r)
        self.store_commit_seconds = Histogram(f"{p}_store_commit_seconds", "Write+fsync time per commit",
                                              buckets=_LATENCY_BUCKETS, registry=r)

    def on_commit(self, lines: int, seconds: float) -> None:
        self.store_commits.inc()
        self.store_lines.inc(lines)
        self.store_commit_seconds.observe(seconds)
