"""Run a params profile as one DVC experiment: `dvc exp run -n NAME -S key=value ...`.

A profile (params-<name>.yaml) is a flat map of dotted params.yaml keys to values. This
script checks the profile against the params' own dataclasses first (a bad key or value
fails in one line, before DVC starts anything), checks that the base model folder exists
(naming the command that makes it when not), then hands every pair to DVC, whose
experiment records the params, the lineage and the outputs like any run.

    python scripts/exp_profile.py params-smollm2.yaml [--dry-run] [-- extra dvc exp run args]
"""
from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lmforge.config import ParamsError, load_params, read_yaml, section  # noqa: E402
from lmforge.stage import run_stage  # noqa: E402


def overlay(params: dict, profile: dict, where: str) -> dict:
    """``params`` with each dotted key of ``profile`` set (the dataclasses judge the keys)."""
    out = copy.deepcopy(params)
    for dotted, value in profile.items():
        parts = dotted.split(".")
        node = out
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ParamsError(f"{where}: {dotted}: params.yaml has no section {part!r} there")
            node = node[part]
        node[parts[-1]] = value
    return out


def check(params: dict, where: str) -> None:
    """Build every section a stage reads, so a bad override fails here naming the key."""
    from lmforge.align.common import check_model_dir
    from lmforge.align.dpo import DPOStageConfig
    from lmforge.align.preferences import PreferenceConfig
    from lmforge.align.reward import RewardStageConfig
    from lmforge.align.sft import SFTStageConfig
    from lmforge.evals.harness import EvalsConfig
    from lmforge.release.config import ReleaseConfig
    from lmforge.release.config import DeployConfig

    for cls, name in ((SFTStageConfig, "sft"), (PreferenceConfig, "preferences"), (RewardStageConfig, "reward"),
                      (DPOStageConfig, "dpo"), (EvalsConfig, "evals"), (ReleaseConfig, "release"),
                      (DeployConfig, "deploy")):
        section(cls, name, params, path=where)
    base = params["sft"]["base_model"]
    if base != "models/pretrain/hf":
        check_model_dir(base, f"{where}: sft.base_model")


def has_key(params: dict, dotted: str) -> bool:
    node = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def overrides(params: dict, profile: dict) -> list[str]:
    """DVC's ``-S`` values (Hydra's override grammar): ``key=value`` for a key params.yaml
    has, ``+key=value`` for one it leaves to its dataclass default, which Hydra refuses to
    override ("Key ... is not in struct") and must be told to add."""
    return [f"{'' if has_key(params, k) else '+'}{k}={json.dumps(v)}" for k, v in profile.items()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--name", help="experiment name (default: the profile's, params-<name>.yaml)")
    ap.add_argument("--dry-run", action="store_true", help="print the dvc command, run nothing")
    ap.add_argument("extra", nargs="*", help="more `dvc exp run` arguments, after --")
    args = ap.parse_args()
    profile = read_yaml(args.profile)
    params = load_params()
    check(overlay(params, profile, args.profile), args.profile)
    name = args.name or Path(args.profile).stem.removeprefix("params-")
    cmd = ["dvc", "exp", "run", "-n", name, *args.extra]
    for override in overrides(params, profile):
        cmd += ["-S", override]
    print(" ".join(cmd))
    return 0 if args.dry_run else subprocess.call(cmd)


if __name__ == "__main__":
    run_stage(main)
