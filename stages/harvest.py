"""Stage `harvest`: the gateway's feedback store → data/feedback/ (+ drift check).

Reads params `harvest` and `data.decontamination`; writes
data/feedback/{sft,preferences,review_labels,decontaminated_sft}.parquet,
metrics/harvest.json, metrics/drift.json (with `retrain_due`), metrics/drift_lengths.csv
and GX results in metrics/gx/harvest_*.json. A failed data check exits non-zero
naming the expectation and the store file, which stops `dvc repro` before SFT/DPO.
"""
from __future__ import annotations

from lmforge.config import load_params, section
from lmforge.decontam import DecontaminationConfig
from lmforge.io import write_csv, write_json
from lmforge.feedback.drift import drift_report
from lmforge.feedback.harvest import HarvestConfig, run_harvest
from lmforge.stage import run_stage


def main() -> None:
    params = load_params()
    cfg = section(HarvestConfig, "harvest", params)
    res = run_harvest(cfg, section(DecontaminationConfig, "data.decontamination", params))
    drift, hist = drift_report(cfg.drift, res.train_prompts, res.live_prompts,
                               res.metrics["ratings_up"], res.metrics["ratings_down"], res.new_examples)
    write_json("metrics/harvest.json", res.metrics)
    write_json("metrics/drift.json", drift)
    write_csv("metrics/drift_lengths.csv", hist)
    print(f"harvest: {res.metrics['requests']} requests, {res.metrics['feedback']} feedback, "
          f"{res.metrics['review_labels']} review labels -> {cfg.out}/ {res.metrics['rows']}")
    for step, n in res.metrics["steps"].items():
        print(f"  {step:<45} {n:>7}")
    print(f"drift: retrain_due={drift['retrain_due']} {'; '.join(drift['reasons'])}")


if __name__ == "__main__":
    run_stage(main)
