"""deploy/grafana-dashboard.json queries only metrics that the real processes export.

The real `lmforge serve` (tiny model) and `lmforge gateway` in front of it get some
traffic (plain, streamed, feedback, one refused key); then both /metrics pages are
scraped and every metric name in the dashboard's PromQL must be a series there. A
labelled family not yet observed counts by its declared family name (Prometheus sees
those series as soon as the first request of that kind arrives).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import yaml

from lmforge.release.config import DeployConfig, ServeConfig
from lmforge.release.dashboards import grafana_dashboard, queried_metrics
from lmforge.release.deploy import write_deploy_files

SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "gauge": ("",), "summary": ("_sum", "_count")}


def exported(text: str) -> set[str]:
    """Series names a Prometheus scrape of this page knows: samples plus declared families."""
    names = {m for m in re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{| )", text, flags=re.M)}
    for fam, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M):
        base = fam.removesuffix("_total") if kind == "counter" else fam
        names |= {base + s for s in SUFFIXES.get(kind, ("",))}
        if kind == "counter" and not fam.endswith("_total"):
            names.add(fam)  # TGI-style bare counters (tgi_request_count)
    return names


def traffic(gw) -> None:
    r = httpx.post(gw.url + "/generate", headers=gw.auth, timeout=60,
                   json={"inputs": "Debian is", "parameters": {"max_new_tokens": 3}})
    assert r.status_code == 200, r.text
    with httpx.stream("POST", gw.url + "/generate_stream", headers=gw.auth, timeout=60,
                      json={"inputs": "Python is", "parameters": {"max_new_tokens": 3}}) as s:
        assert [ln for ln in s.iter_lines() if ln.startswith("data:")]
    fb = httpx.post(gw.url + "/feedback", headers=gw.auth, timeout=30,
                    json={"request_id": r.headers["x-request-id"], "rating": "up"})
    assert fb.status_code == 200, fb.text
    assert httpx.post(gw.url + "/feedback", json={"request_id": "x", "rating": "up"}).status_code == 401


def test_dashboard_metrics_exist_in_real_scrapes(stack, tmp_path):
    upstream, gw = stack
    traffic(gw)
    server = exported(httpx.get(upstream + "/metrics", timeout=30).text)
    gateway = exported(httpx.get(gw.url + "/metrics", timeout=30).text)
    d = DeployConfig(out_dir=str(tmp_path / "deploy"), engine="tgi")  # the panels chart TGI-named metrics
    files = write_deploy_files(d, ServeConfig(max_total_tokens=256))
    dash = json.loads(Path(files["grafana"]).read_text())
    assert dash == grafana_dashboard(d)
    wanted = queried_metrics(dash)
    assert any(n.startswith("tgi_") for n in wanted) and any(n.startswith("lmforge_gateway_") for n in wanted)
    assert not wanted - (server | gateway), sorted(wanted - (server | gateway))
    # both processes are covered: every server and gateway family has a panel
    families = {re.sub(r"_(bucket|sum|count|total)$", "", n) for n in wanted}
    for fam in ("tgi_request_duration", "tgi_queue_size", "lmforge_gateway_requests",
                "lmforge_gateway_time_to_first_token_seconds"):
        assert fam in families, fam
    prom = yaml.safe_load(Path(files["prometheus"]).read_text())
    assert [j["metrics_path"] for j in prom["scrape_configs"]] == ["/metrics", "/metrics"]
    assert prom["scrape_configs"][0]["kubernetes_sd_configs"][0]["role"] == "pod"   # per pod: the HPA's labels
