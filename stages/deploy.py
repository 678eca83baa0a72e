"""Stage deploy: TGI and vLLM deployment files, then a smoke and load test of the local server.

Reads params `serve` and `deploy`; writes deploy/ (for `deploy.engine` tgi and/or vllm:
tgi-run.sh, kubernetes.yaml, tgi.sbatch / vllm-run.sh, vllm-kubernetes.yaml, vllm.sbatch;
prometheus.yml, grafana-dashboard.json), metrics/serve.json (the smoke test's answers) and
metrics/timing/serve.json: at each concurrency in deploy.smoke.concurrency, requests of a
fixed deploy.smoke.max_new_tokens output tokens (the end token ignored): output tokens/s,
latency, time to first token and inter-token latency p50/p95, measured over plain HTTP
(lmforge.release.loadtest)
against `lmforge serve` on models/release, which the stage starts in a subprocess and
stops. Before the load test, the smoke test: generate, stream and chat must answer, a
single-token reply fails, and the greedy replies to the held-out prompts
(deploy.smoke.check) must pass the degenerate-output gate (lmforge.replies) that
also guards SFT, DPO and release. The timing file is listed at the top level of dvc.yaml, not as a stage output,
so the speed of the machine never changes dvc.lock.

Then, with the server still up, served = offline (lmforge.evals.served, params
deploy.served_eval): the multiple-choice tasks of evals.tasks_dir through the server's
/v1/completions and through transformers on the same folder must pick the same choice
on every item; the first item that differs fails the stage, named. The picks and
accuracies go to metrics/serve.json; the largest log-likelihood difference, which depends on
how the server batched, to metrics/timing/served_eval.json (like timing, not a stage output).
"""
from __future__ import annotations

import json
from pathlib import Path

from lmforge.align.common import load_tokenizer, prompt_text
from lmforge.config import load_params, require, section
from lmforge.evals.harness import EvalsConfig
from lmforge.gates import enforce
from lmforge.replies import held_out_prompts
from lmforge.evals.served import check_served
from lmforge.io import write_json
from lmforge.release.config import DeployConfig, ServeConfig
from lmforge.release.deploy import write_deploy_files
from lmforge.release.launcher import start_server
from lmforge.release.loadtest import check_replies, run_load, smoke
from lmforge.stage import run_stage

METRICS = "metrics/serve.json"
TIMING = "metrics/timing/serve.json"
NUMERICS = "metrics/timing/served_eval.json"


def served_penalty(model_dir: str) -> float | None:
    """The repetition penalty the server applies to requests that set none (generation_config.json)."""
    path = Path(model_dir) / "generation_config.json"
    return json.loads(path.read_text()).get("repetition_penalty") if path.is_file() else None


def main() -> None:
    params = load_params()
    deploy = section(DeployConfig, "deploy", params)
    serve = section(ServeConfig, "serve", params).for_model(deploy.model_dir)
    served_eval = deploy.served_eval
    require(served_eval.batch_size <= serve.max_batch_size, f"deploy.served_eval.batch_size "
            f"({served_eval.batch_size}) must be <= serve.max_batch_size ({serve.max_batch_size})")
    tasks_dir = section(EvalsConfig, "evals", params).tasks_dir if served_eval.enabled else None
    files = write_deploy_files(deploy, serve)
    check = deploy.smoke.check
    tok = load_tokenizer(deploy.model_dir)
    prompts = held_out_prompts(check.data_dir, check.prompts)
    args = [*serve.launcher_args(), "--batch-wait-ms", str(serve.batch_wait_ms), "--dtype", serve.dtype]
    with start_server(deploy.model_dir, extra_args=args, timeout=deploy.smoke.startup_timeout_s) as srv:
        metrics = {"smoke": smoke(srv.url, max_new_tokens=deploy.smoke.max_new_tokens)}
        metrics["replies"] = check_replies(srv.url, prompts, [prompt_text(tok, p) for p in prompts], check,
                                           metrics["smoke"], deploy.smoke.max_new_tokens)
        # the penalty the replies were decoded with: the client's, else the release's served default
        metrics["replies"]["repetition_penalty"] = check.repetition_penalty or served_penalty(deploy.model_dir)
        if check.gate.mode == "fail" and metrics["replies"]["gate_failures"]:
            write_json(METRICS, metrics)   # the replies that failed, for the reader of the message
            enforce("deploy smoke", metrics["replies"]["gate_failures"], "fail",
                    f"thresholds: params.yaml deploy.smoke.check.gate; replies: {METRICS}")
        timing, numerics = {}, {}
        for c in deploy.smoke.concurrency:
            timing[f"concurrency_{c}"] = run_load(srv.url, requests=deploy.smoke.requests, concurrency=c,
                                                   max_new_tokens=deploy.smoke.max_new_tokens)
        if served_eval.enabled:
            metrics["served_eval"], numerics = check_served(
                srv.url, deploy.model_dir, served_eval.tasks, tasks_dir, served_eval.limit,
                served_eval.batch_size, serve.max_input_tokens)
    write_json(METRICS, metrics)
    write_json(TIMING, timing)
    enforce("deploy smoke", metrics["replies"]["gate_failures"], check.gate.mode,
            f"thresholds: params.yaml deploy.smoke.check.gate; replies: {METRICS}")
    write_json(NUMERICS, numerics)
    print(f"deploy: wrote {', '.join(str(p) for p in files.values())}")
    for c in deploy.smoke.concurrency:
        m = timing[f"concurrency_{c}"]
        print(f"  concurrency {c}: {m['max_new_tokens']} output tokens per request, latency p50 "
              f"{m['latency_p50_s']}s p95 {m['latency_p95_s']}s, ttft p50 {m['ttft_p50_s']}s p95 {m['ttft_p95_s']}s, "
              f"itl p50 {m['itl_p50_s']}s p95 {m['itl_p95_s']}s, {m['tokens_per_s']} output tok/s")
    for task, m in metrics.get("served_eval", {}).items():
        print(f"  served = offline on {task}: {m['same_picks']}/{m['items']} same picks, acc {m['acc_served']:.4g} "
              f"(max |d loglik| {numerics[task]['max_abs_loglikelihood_diff']:.2g})")


if __name__ == "__main__":
    run_stage(main)
