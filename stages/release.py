"""Stage release: models/dpo -> models/release with a model card naming its lineage.

Reads params `release` (and the sections the card quotes); writes models/release/
(merged safetensors, tokenizer, generation_config.json, README.md model card,
lineage.json) and metrics/release.json. Reads dvc.lock for upstream hashes without
depending on it (see lmforge/release/lineage.py).
"""
from __future__ import annotations

from lmforge.config import load_params, section
from lmforge.io import write_json
from lmforge.release.build import ReleaseConfig, release
from lmforge.stage import run_stage

METRICS = "metrics/release.json"


def main() -> None:
    params = load_params()
    cfg = section(ReleaseConfig, "release", params)
    metrics = release(cfg, params)
    write_json(METRICS, metrics)
    print(f"release: {cfg.source} -> {cfg.out_dir} ({metrics['parameters']:,} parameters, "
          f"{metrics['upstream_artifacts']} upstream artifacts from {metrics['upstream_stages']} stages)")


if __name__ == "__main__":
    run_stage(main)
