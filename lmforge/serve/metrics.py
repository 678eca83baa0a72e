"""Prometheus metrics under TGI's own names, so TGI dashboards and autoscalers work.

TGI (docs/source/reference/metrics.md) exports counters without the `_total` suffix
(`tgi_request_count`, `tgi_request_success`, …), histograms (`tgi_request_duration`,
`tgi_request_generated_tokens`, …) and gauges (`tgi_queue_size`,
`tgi_batch_current_size`). prometheus-client always appends `_total` to counters, so
counters here are a small collector whose samples carry the bare name, and the
rendered HELP/TYPE lines are named to match. Each server owns its registry, so several
servers (tests) can live in one process. Names that TGI does not have start with
`lmforge_`.
"""
from __future__ import annotations

import threading
from collections import defaultdict

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import Metric

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
TOKEN_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128)


class _Counters:
    """Counters exported under their bare names (TGI style, no `_total`)."""

    def __init__(self, docs: dict[str, str]):
        self.docs = docs
        self.values: dict[str, dict[tuple, float]] = {n: defaultdict(float) for n in docs}
        self.lock = threading.Lock()

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        with self.lock:
            self.values[name][tuple(sorted(labels.items()))] += amount

    def get(self, name: str, **labels: str) -> float:
        with self.lock:
            return self.values[name].get(tuple(sorted(labels.items())), 0.0)

    def collect(self):
        with self.lock:
            snapshot = {n: dict(v) for n, v in self.values.items()}
        for name, series in snapshot.items():
            m = Metric(name, self.docs[name], "counter")
            for labels, value in series.items():
                m.add_sample(name, dict(labels), value)
            yield m


class ServerMetrics:
    """All metrics of one server; the engine and the routes update them."""

    COUNTERS = {
        "tgi_request_count": "Total number of requests received",
        "tgi_request_success": "Number of successful requests",
        "tgi_request_failure": "Number of failed requests, by error type",
        "tgi_batch_inference_count": "Number of forward passes, by method (prefill/decode)",
        "tgi_batch_inference_success": "Number of successful forward passes, by method",
        "tgi_batch_concat": "Number of times new requests joined a running batch",
    }

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.counters = _Counters(self.COUNTERS)
        r.register(self.counters)
        self.queue_size = Gauge("tgi_queue_size", "Requests waiting in the queue", registry=r)
        self.batch_current_size = Gauge("tgi_batch_current_size", "Current batch size", registry=r)
        self.batch_current_max_tokens = Gauge(
            "tgi_batch_current_max_tokens", "Tokens held in the current batch's KV cache", registry=r)
        self.inflight = Gauge("lmforge_requests_inflight", "Admitted requests not yet finished", registry=r)

        def hist(name, doc, buckets, labels=()):
            return Histogram(name, doc, labelnames=labels, buckets=buckets, registry=r)

        self.request_duration = hist("tgi_request_duration", "End-to-end request latency (s)", DURATION_BUCKETS)
        self.request_validation_duration = hist(
            "tgi_request_validation_duration", "Request validation time (s)", DURATION_BUCKETS)
        self.request_queue_duration = hist("tgi_request_queue_duration", "Time spent queued (s)", DURATION_BUCKETS)
        self.request_inference_duration = hist(
            "tgi_request_inference_duration", "Time from batch admission to last token (s)", DURATION_BUCKETS)
        self.request_mean_time_per_token = hist(
            "tgi_request_mean_time_per_token_duration", "Mean time per generated token (s)", DURATION_BUCKETS)
        self.request_generated_tokens = hist(
            "tgi_request_generated_tokens", "Generated tokens per request", TOKEN_BUCKETS)
        self.request_input_length = hist("tgi_request_input_length", "Input tokens per request", TOKEN_BUCKETS)
        self.request_max_new_tokens = hist("tgi_request_max_new_tokens", "max_new_tokens per request", TOKEN_BUCKETS)
        self.batch_next_size = hist("tgi_batch_next_size", "Requests admitted together in one prefill", BATCH_BUCKETS)
        self.batch_forward_duration = hist(
            "tgi_batch_forward_duration", "Model forward time (s), by method", DURATION_BUCKETS, ("method",))
        self.batch_inference_duration = hist(
            "tgi_batch_inference_duration", "Forward plus token choice time (s), by method",
            DURATION_BUCKETS, ("method",))
        self.decode_batch_size = hist(
            "lmforge_batch_decode_size", "Rows in each decode step (batching at work when > 1)", BATCH_BUCKETS)

    def render(self) -> bytes:
        text = generate_latest(self.registry).decode()
        for name in self.COUNTERS:  # prometheus-client names counter families `<name>_total`
            text = text.replace(f"# HELP {name}_total ", f"# HELP {name} ")
            text = text.replace(f"# TYPE {name}_total counter", f"# TYPE {name} counter")
        return text.encode()
