"""`lmforge check`: the whole params.yaml validated before any compute runs.

Why: each stage validates its own section when it starts, so without this a typo in ``dpo:``
surfaces only after curation, pretraining, SFT and reward have run. Here every section is built
into the same dataclass its stage reads (one home for each section's rules: the stage's
module), all errors are reported at once with did-you-mean hints, in about a second. Run by
``make repro`` before ``dvc repro`` and by the Snakefile's ``onstart``; ``--schema`` writes a
JSON Schema of params for editors (``params.schema.json``).

    lmforge check [--params params.yaml] [--schema params.schema.json]
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

from lmforge.config import PARAMS_FILE, ParamsError, _check, build, did_you_mean, load_params, require

# top-level key -> (module, dataclass) its stage reads; "seed" is a plain integer
SECTIONS: dict[str, tuple[str, str]] = {
    "data": ("lmforge.curation.curate_config", "DataConfig"),
    "tokenizer": ("lmforge.tokens.tokenizer", "TokenizerConfig"),
    "tokenize": ("lmforge.tokens.pack", "TokenizeConfig"),
    "checks": ("lmforge.checks.suites", "ChecksConfig"),
    "resources": ("lmforge.check", "Resources"),
    "model": ("lmforge.model", "ModelConfig"),
    "pretrain": ("lmforge.train.config", "PretrainConfig"),
    "instructions": ("lmforge.align.instructions", "InstructionsConfig"),
    "sft": ("lmforge.align.sft", "SFTStageConfig"),
    "preferences": ("lmforge.align.preferences", "PreferenceConfig"),
    "reward": ("lmforge.align.reward", "RewardStageConfig"),
    "dpo": ("lmforge.align.dpo", "DPOStageConfig"),
    "evals": ("lmforge.evals.harness", "EvalsConfig"),
    "release": ("lmforge.release.config", "ReleaseConfig"),
    "serve": ("lmforge.release.config", "ServeConfig"),
    "deploy": ("lmforge.release.config", "DeployConfig"),
    "gateway": ("lmforge.gateway.state", "GatewayConfig"),
    "harvest": ("lmforge.feedback.harvest", "HarvestConfig"),
}
SCALARS: dict[str, Any] = {"seed": int}


@dataclasses.dataclass
class StageResources:
    """One training stage's SLURM resources (dvc.yaml ``meta.resources`` reads them)."""
    gpu: int = 0
    gpu_model: str = ""
    cpus_per_gpu: int = 8        # with gpu > 0: CPUs per GPU (one rank each)
    mem_mb_per_gpu: int = 32000  # with gpu > 0: the job's memory is gpu x this
    partition: str = ""
    runtime: int = 60
    slurm_extra: str = ""

    def __post_init__(self):
        require(self.gpu >= 0, f"resources: gpu must be >= 0, got {self.gpu}")
        require(self.cpus_per_gpu >= 1, f"resources: cpus_per_gpu must be >= 1, got {self.cpus_per_gpu}")
        require(self.mem_mb_per_gpu >= 1, f"resources: mem_mb_per_gpu must be >= 1, got {self.mem_mb_per_gpu}")
        require(self.runtime >= 1, f"resources: runtime must be >= 1 minute, got {self.runtime}")


@dataclasses.dataclass
class Resources:
    pretrain: StageResources = dataclasses.field(default_factory=StageResources)
    sft: StageResources = dataclasses.field(default_factory=StageResources)
    reward: StageResources = dataclasses.field(default_factory=StageResources)
    dpo: StageResources = dataclasses.field(default_factory=StageResources)


def section_class(name: str) -> type:
    module, cls = SECTIONS[name]
    return getattr(importlib.import_module(module), cls)


def uncovered_sources(params: dict, dvc_yaml: str | Path) -> list[str]:
    """Local ``data.sources`` that no dep of the curate stage covers (so a changed crawl would
    not rerun curation): one line each, naming the fix."""
    import yaml

    from lmforge.codedeps import SOURCE_STAGE, _dep_path, covered, source_deps

    if not Path(dvc_yaml).exists():
        return []
    stage = (yaml.safe_load(Path(dvc_yaml).read_text()).get("stages") or {}).get(SOURCE_STAGE) or {}
    deps = [_dep_path(d) for d in stage.get("deps") or []]
    return [f"data.sources: {s} is not a dep of stage '{SOURCE_STAGE}' in {dvc_yaml}, so a changed crawl "
            f"would not rerun it: run `python -m lmforge.codedeps --write`"
            for s in source_deps(params) if not covered(s, deps)]


def check(params: dict, where: str = PARAMS_FILE, dvc_yaml: str | Path | None = None) -> list[str]:
    """Every problem in ``params`` as one line each (empty: all sections build); with ``dvc_yaml``
    also the local sources that curation does not depend on."""
    errors = []
    for key in params:
        if key not in SECTIONS and key not in SCALARS:
            errors.append(f"{where}: unknown section '{key}'{did_you_mean(key, [*SECTIONS, *SCALARS])}")
    for key, tp in SCALARS.items():
        if key in params:
            try:
                _check(params[key], tp, f"{where}: {key}")
            except ParamsError as e:
                errors.append(str(e))
    for name in SECTIONS:
        if name not in params:
            continue
        try:
            built = build(section_class(name), params[name], f"{where}: {name}")
        except ParamsError as e:
            errors.append(str(e))
            continue
        try:   # what only the installed libraries can check (e.g. a TRL passthrough); imports them only then
            getattr(built, "check_installed", lambda: None)()
        except ParamsError as e:
            errors.append(f"{where}: {e}")
    if dvc_yaml is not None and not errors:
        errors += [f"{where}: {e}" for e in uncovered_sources(params, dvc_yaml)]
    return errors


def _schema(tp: Any) -> dict:
    """JSON Schema of a params type: the same types ``lmforge.config`` accepts."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is None:
        return {}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [{"type": "null"} if a is type(None) else _schema(a) for a in args]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, tuple) or tp in (list, tuple):
        return {"type": "array", **({"items": _schema(args[0])} if args else {})}
    if origin is dict or tp is dict:
        return {"type": "object", **({"additionalProperties": _schema(args[1])} if args else {})}
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        props = {}
        for f in dataclasses.fields(tp):
            props[f.name] = _schema(hints[f.name])
            if f.default is not dataclasses.MISSING and isinstance(f.default, (int, float, str, bool, type(None))):
                props[f.name]["default"] = f.default
        required = [f.name for f in dataclasses.fields(tp)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        return {"type": "object", "additionalProperties": False, "properties": props,
                **({"required": required} if required else {})}
    return {bool: {"type": "boolean"}, int: {"type": "integer"}, float: {"type": "number"},
            str: {"type": "string"}}.get(tp, {})


def schema() -> dict:
    props = {k: _schema(tp) for k, tp in SCALARS.items()}
    props.update({name: _schema(section_class(name)) for name in SECTIONS})
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "lmforge params.yaml",
            "description": "Written by `lmforge check --schema`; the rules live in each section's dataclass.",
            "type": "object", "additionalProperties": False, "properties": props}


def add_parser(sub) -> None:
    _arguments(sub.add_parser("check", help="validate the whole params.yaml before any compute runs"))


def _arguments(p) -> None:
    p.add_argument("--params", default=PARAMS_FILE, help="the parameter file (default: %(default)s)")
    p.add_argument("--schema", metavar="PATH", help="also write a JSON Schema of params to PATH")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.schema:
        Path(args.schema).write_text(json.dumps(schema(), indent=1, sort_keys=True) + "\n")
    try:
        errors = check(load_params(args.params), args.params, Path(args.params).parent / "dvc.yaml")
    except ParamsError as e:
        errors = [str(e)]
    for line in errors:
        print(line, file=sys.stderr)
    if not errors:
        print(f"{args.params}: all {len(SECTIONS) + len(SCALARS)} sections valid")
    return 2 if errors else 0


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lmforge.check", description=__doc__.splitlines()[0])
    _arguments(parser)
    sys.exit(run(parser.parse_args()))
