"""Prometheus scrape config and a Grafana dashboard for the served model, from params.

The deploy stage writes them beside the TGI files (``deploy/prometheus.yml``,
``deploy/grafana-dashboard.json``), so ``dvc repro`` keeps them in step with params.
Panels query, per engine in ``deploy.engine``, the model server's own names: TGI's ``tgi_*``
(the names the official image exports, and ``lmforge serve`` too, see ``lmforge.serve.metrics``)
and vLLM's ``vllm:*`` (checked against the names vLLM's Prometheus logger defines in the pinned
version, tests/release/vllm_cli_flags.json); then the gateway's ``lmforge_gateway_*``
(``lmforge.gateway.metrics``). No server panel queries an ``lmforge_*`` name: neither official
image exports one. A test scrapes the real processes and checks every TGI and gateway name.
"""
from __future__ import annotations

import json

import yaml

from lmforge.release.config import DeployConfig

GATEWAY_PORT = 8080  # `lmforge gateway --port` default

# (panel title, unit, [(legend, PromQL)]) per row; $__rate_interval is Grafana's own
SERVER_PANELS = [
    ("Requests/s (received, succeeded, failed)", "reqps", [
        ("received", "sum(rate(tgi_request_count[$__rate_interval]))"),
        ("succeeded", "sum(rate(tgi_request_success[$__rate_interval]))"),
        ("failed", "sum(rate(tgi_request_failure[$__rate_interval]))")]),
    ("Request latency p50 / p95", "s", [
        ("p50", "histogram_quantile(0.5, sum by (le) (rate(tgi_request_duration_bucket[$__rate_interval])))"),
        ("p95", "histogram_quantile(0.95, sum by (le) (rate(tgi_request_duration_bucket[$__rate_interval])))")]),
    ("Queue and inference time p95", "s", [
        ("queue", "histogram_quantile(0.95, sum by (le) (rate(tgi_request_queue_duration_bucket[$__rate_interval])))"),
        ("inference", "histogram_quantile(0.95, sum by (le) "
                      "(rate(tgi_request_inference_duration_bucket[$__rate_interval])))")]),
    ("Time per output token p50", "s", [
        ("p50", "histogram_quantile(0.5, sum by (le) "
                "(rate(tgi_request_mean_time_per_token_duration_bucket[$__rate_interval])))")]),
    ("Generated tokens/s", "short", [
        ("tokens/s", "sum(rate(tgi_request_generated_tokens_sum[$__rate_interval]))")]),
    ("Input length p95 (tokens)", "short", [
        ("p95", "histogram_quantile(0.95, sum by (le) (rate(tgi_request_input_length_bucket[$__rate_interval])))")]),
    ("Queue size and batch", "short", [
        ("queued", "sum(tgi_queue_size)"), ("batch size", "sum(tgi_batch_current_size)")]),
    ("KV tokens in the batch", "short", [("tokens", "sum(tgi_batch_current_max_tokens)")]),
    ("Forward time p95 by method", "s", [
        ("{{method}}", "histogram_quantile(0.95, sum by (le, method) "
                       "(rate(tgi_batch_forward_duration_bucket[$__rate_interval])))")]),
]
VLLM_PANELS = [
    ("Requests (vLLM)", "reqps", [
        ("succeeded {{finished_reason}}", "sum by (finished_reason) (rate(vllm:request_success_total[$__rate_interval]))")]),
    ("Request latency (vLLM)", "s", [
        ("p50", "histogram_quantile(0.5, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket[$__rate_interval])))"),
        ("p95", "histogram_quantile(0.95, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket[$__rate_interval])))")]),
    ("Time to first token p95 (vLLM)", "s", [
        ("ttft", "histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket[$__rate_interval])))")]),
    ("Inter-token latency p95 (vLLM)", "s", [
        ("itl", "histogram_quantile(0.95, sum by (le) (rate(vllm:inter_token_latency_seconds_bucket[$__rate_interval])))")]),
    ("Tokens (vLLM)", "short", [
        ("generated/s", "sum(rate(vllm:generation_tokens_total[$__rate_interval]))"),
        ("prompt/s", "sum(rate(vllm:prompt_tokens_total[$__rate_interval]))")]),
    ("Queue and running (vLLM; the autoscaler's gauge)", "short", [
        ("waiting", "sum(vllm:num_requests_waiting)"), ("running", "sum(vllm:num_requests_running)")]),
    ("KV cache usage (vLLM)", "percentunit", [("used", "avg(vllm:kv_cache_usage_perc)")]),
]

GATEWAY_PANELS = [
    ("Gateway requests/s by status", "reqps", [
        ("{{status}}", "sum by (status) (rate(lmforge_gateway_requests_total[$__rate_interval]))")]),
    ("Gateway latency p95: end to end vs upstream", "s", [
        ("end to end", "histogram_quantile(0.95, sum by (le) "
                       "(rate(lmforge_gateway_request_duration_seconds_bucket[$__rate_interval])))"),
        ("upstream", "histogram_quantile(0.95, sum by (le) "
                     "(rate(lmforge_gateway_upstream_duration_seconds_bucket[$__rate_interval])))")]),
    ("Time to first token p95 (streams)", "s", [
        ("p95", "histogram_quantile(0.95, sum by (le) "
                "(rate(lmforge_gateway_time_to_first_token_seconds_bucket[$__rate_interval])))")]),
    ("Tokens/s through the gateway", "short", [
        ("{{direction}}", "sum by (direction) (rate(lmforge_gateway_tokens_total[$__rate_interval]))")]),
    ("Estimated cost per hour", "currencyUSD", [
        ("cost", "sum(rate(lmforge_gateway_cost_total[$__rate_interval])) * 3600")]),
    ("Safety verdicts/s", "short", [
        ("{{verdict}}", "sum by (verdict) (rate(lmforge_gateway_safety_verdicts_total[$__rate_interval]))")]),
    ("Feedback/s and auth failures/s", "short", [
        ("{{kind}}", "sum by (kind) (rate(lmforge_gateway_feedback_total[$__rate_interval]))"),
        ("auth failures", "sum(rate(lmforge_gateway_auth_failures_total[$__rate_interval]))")]),
    ("Gateway in flight", "short", [("in flight", "sum(lmforge_gateway_inflight_requests)")]),
    ("Feedback store: lines/s and commit p95", "short", [
        ("lines/s", "sum(rate(lmforge_gateway_store_lines_total[$__rate_interval]))"),
        ("commits/s", "sum(rate(lmforge_gateway_store_commits_total[$__rate_interval]))"),
        ("commit p95 (s)", "histogram_quantile(0.95, sum by (le) "
                           "(rate(lmforge_gateway_store_commit_seconds_bucket[$__rate_interval])))")]),
]


def pod_scrape_job(d: DeployConfig, engine: str) -> dict:
    """One engine's pods, found through the Kubernetes API (``role: pod``) and kept by the
    Deployment's labels and ``prometheus.io/*`` annotations (lmforge.release.manifests), each
    scraped on its own with ``namespace`` and ``pod`` labels: the labels prometheus-adapter needs
    to give the HorizontalPodAutoscaler a per-pod metric. (A Service scraped as one fixed target
    carries neither, so the autoscaler would never get its metric.)"""
    meta = "__meta_kubernetes_pod_"
    return {
        "job_name": f"{d.name}-{engine}", "metrics_path": "/metrics",
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [d.kubernetes.namespace]}}],
        "relabel_configs": [
            {"source_labels": [f"{meta}label_app_kubernetes_io_name"], "action": "keep", "regex": f"{d.name}-{engine}"},
            {"source_labels": [f"{meta}annotation_prometheus_io_scrape"], "action": "keep", "regex": "true"},
            {"source_labels": ["__address__", f"{meta}annotation_prometheus_io_port"], "action": "replace",
             "regex": "([^:]+)(?::\\d+)?;(\\d+)", "replacement": "$1:$2", "target_label": "__address__"},
            {"source_labels": [f"{meta}annotation_prometheus_io_path"], "action": "replace", "regex": "(.+)",
             "target_label": "__metrics_path__"},
            {"source_labels": ["__meta_kubernetes_namespace"], "action": "replace", "target_label": "namespace"},
            {"source_labels": [f"{meta}name"], "action": "replace", "target_label": "pod"},
            {"target_label": "engine", "replacement": engine},
            {"target_label": "service", "replacement": "model-server"},
        ],
    }


def prometheus_yml(d: DeployConfig, header: str) -> str:
    """Scrape the model servers' pods (the chosen engines' Kubernetes files) and the gateway."""
    cfg = {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "scrape_configs": [
            *(pod_scrape_job(d, engine) for engine in d.engines),
            {"job_name": f"{d.name}-gateway", "metrics_path": "/metrics",
             "static_configs": [{"targets": [f"{d.name}-gateway:{GATEWAY_PORT}"], "labels": {"service": "gateway"}}]},
        ],
    }
    return (f"# {header}\n# Targets: each model server pod (Kubernetes pod discovery in namespace "
            f"'{d.kubernetes.namespace}') and `lmforge gateway`; edit the gateway's to where it runs.\n"
            + yaml.safe_dump(cfg, sort_keys=False))


def _panel(pid: int, title: str, unit: str, targets: list[tuple[str, str]], x: int, y: int) -> dict:
    return {
        "id": pid, "type": "timeseries", "title": title, "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
                    for i, (legend, expr) in enumerate(targets)],
    }


def grafana_dashboard(d: DeployConfig) -> dict:
    """One dashboard: a row per model server engine (TGI, vLLM), a row for the gateway."""
    panels, pid, y = [], 1, 0
    server_rows = {"tgi": ("Model server: TGI (tgi_*)", SERVER_PANELS), "vllm": ("Model server: vLLM (vllm:*)", VLLM_PANELS)}
    for row_title, rows in (*(server_rows[e] for e in d.engines), ("Gateway (lmforge_gateway_*)", GATEWAY_PANELS)):
        panels.append({"id": pid, "type": "row", "title": row_title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y = pid + 1, y + 1
        for i, (title, unit, targets) in enumerate(rows):
            panels.append(_panel(pid, title, unit, targets, 12 * (i % 2), y + 8 * (i // 2)))
            pid += 1
        y += 8 * ((len(rows) + 1) // 2)
    return {
        "title": f"{d.name}: model server and gateway", "uid": f"{d.name}-serving", "schemaVersion": 39,
        "version": 1, "editable": True, "refresh": "30s", "time": {"from": "now-1h", "to": "now"},
        "tags": ["lmforge", *d.engines],
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus"}]},
        "panels": panels,
    }


def dashboard_json(d: DeployConfig) -> str:
    return json.dumps(grafana_dashboard(d), indent=2) + "\n"


def queried_metrics(dashboard: dict) -> set[str]:
    """Metric names in the dashboard's PromQL (what must exist in a scrape)."""
    import re

    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return {m for e in exprs for m in re.findall(r"\b(?:tgi_|lmforge_|vllm:)[a-z0-9_]+", e)}
