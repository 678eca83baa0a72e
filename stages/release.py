"""Stage release: models/dpo -> models/release with a model card naming its lineage.

Reads params `release` (and the sections the card quotes); writes models/release/
(merged safetensors, tokenizer, generation_config.json, README.md model card,
lineage.json) and metrics/release.json. Then the release gate: greedy replies of the
released folder to the held-out prompts (params `release.check`) must not be empty,
short or looping (lmforge.replies); `mode: fail` stops here. Reads dvc.lock for upstream hashes without
depending on it (see lmforge/release/lineage.py).
"""
from __future__ import annotations

from lmforge.align.evaluate import reply_check
from lmforge.config import load_params, section
from lmforge.gates import enforce
from lmforge.io import write_json
from lmforge.release.build import release
from lmforge.release.config import ReleaseConfig
from lmforge.stage import run_stage

METRICS = "metrics/release.json"


def main() -> None:
    params = load_params()
    cfg = section(ReleaseConfig, "release", params)
    metrics = release(cfg, params)
    metrics["replies"] = reply_check(cfg.out_dir, cfg.check, "release")
    write_json(METRICS, metrics)
    print(f"release: {cfg.source} -> {cfg.out_dir} ({metrics['parameters']:,} parameters, "
          f"{metrics['upstream_artifacts']} upstream artifacts from {metrics['upstream_stages']} stages)")
    enforce("release", metrics["replies"]["gate_failures"], cfg.check.gate.mode,
            f"thresholds: params.yaml release.check.gate; replies: {METRICS}")


if __name__ == "__main__":
    run_stage(main)
