"""Stage deploy: TGI and vLLM deployment files, then a smoke and load test of the local server.

Reads params `serve` and `deploy`; writes deploy/ (for `deploy.engine` tgi and/or vllm:
tgi-run.sh, kubernetes.yaml, tgi.sbatch / vllm-run.sh, vllm-kubernetes.yaml, vllm.sbatch;
prometheus.yml, grafana-dashboard.json), metrics/serve.json (the smoke test's answers) and
metrics/timing/serve.json: latency p50/p95, time to first token and tokens/s at each
concurrency in deploy.smoke.concurrency, measured over plain HTTP (lmforge.release.loadtest)
against `lmforge serve` on models/release, which the stage starts in a subprocess and
stops. The timing file is listed at the top level of dvc.yaml, not as a stage output,
so the speed of the machine never changes dvc.lock.
"""
from __future__ import annotations

from lmforge.config import load_params, section
from lmforge.io import write_json
from lmforge.serve.config import DeployConfig, ServeConfig
from lmforge.release.deploy import write_deploy_files
from lmforge.serve.launcher import start_server
from lmforge.release.loadtest import run_load, smoke
from lmforge.stage import run_stage

METRICS = "metrics/serve.json"
TIMING = "metrics/timing/serve.json"


def main() -> None:
    params = load_params()
    deploy = section(DeployConfig, "deploy", params)
    serve = section(ServeConfig, "serve", params).for_model(deploy.model_dir)
    files = write_deploy_files(deploy, serve)
    args = [*serve.launcher_args(), "--batch-wait-ms", str(serve.batch_wait_ms), "--dtype", serve.dtype]
    with start_server(deploy.model_dir, extra_args=args, timeout=deploy.smoke.startup_timeout_s) as srv:
        metrics = {"smoke": smoke(srv.url, max_new_tokens=deploy.smoke.max_new_tokens)}
        timing = {}
        for c in deploy.smoke.concurrency:
            timing[f"concurrency_{c}"] = run_load(srv.url, requests=deploy.smoke.requests, concurrency=c,
                                                   max_new_tokens=deploy.smoke.max_new_tokens)
    write_json(METRICS, metrics)
    write_json(TIMING, timing)
    print(f"deploy: wrote {', '.join(str(p) for p in files.values())}")
    for c in deploy.smoke.concurrency:
        m = timing[f"concurrency_{c}"]
        print(f"  concurrency {c}: p50 {m['latency_p50_s']}s p95 {m['latency_p95_s']}s "
              f"ttft {m['ttft_p50_s']}s {m['tokens_per_s']} tok/s")


if __name__ == "__main__":
    run_stage(main)
