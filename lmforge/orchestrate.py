"""dvc.yaml → Snakemake rules: one stage graph, two schedulers.

``dvc.yaml`` is the single source of truth for the pipeline graph. ``dvc repro``
runs it on one machine; the ``Snakefile`` turns every stage into a Snakemake rule
through :func:`rules_from_dvc` so the same graph can be sent to a SLURM cluster
(``snakemake --workflow-profile profiles/slurm``). Nothing here imports Snakemake
or DVC: the translation is a pure function of dvc.yaml and the params files, so
it can be tested and inspected on its own.

Translation, per stage:

- ``cmd`` (a string or a list, joined with ``&&``) becomes the rule's shell
  command, prefixed with ``cd <wdir> &&`` when the stage has a ``wdir``.
- ``deps`` become inputs. A dep inside (or above) another stage's output is
  replaced by (or extended with) that output, as DVC links them, so both tools
  see the same edges.
- ``outs``, ``metrics`` and ``plots`` become outputs; folders become
  ``directory()`` outputs. ``persist: true`` outs are left out, because Snakemake
  deletes a job's outputs before running it. A stage left with no output gets a
  stamp file under ``.snakemake/dvc-stages/`` so Snakemake can schedule it.
- The values of the stage's ``params`` keys are frozen into the rule's
  ``params`` as canonical JSON, next to the command (with any ``${...}``
  interpolated), so Snakemake's ``params`` rerun trigger reruns exactly the
  stages DVC would.
- A stage-level ``meta: {resources: {...}}`` block (ignored by DVC) gives
  ``threads`` and the Snakemake/SLURM resources (``mem_mb``, ``runtime``,
  ``gpu``, ``slurm_partition`` ...). It is interpolated like the rest, so
  ``gpu: ${resources.pretrain.gpu}`` takes the count from params.yaml; a
  resource that comes out empty (``""`` or null) is left unset. For submission
  (:attr:`RuleSpec.submit_resources`) the SLURM plugin's ``gpu: N`` (and
  ``gpu_model: M``) become ``gres: gpu:N`` (``gres: gpu:M:N``): sbatch's
  ``--gres`` is per node, as the multi-node batch script's ``--gpus-per-node``
  (the plugin would send ``gpu`` as a job total, ``--gpus=N``, and refuses both
  at once). ``meta: {retries: 0}`` marks a stage whose failure is deterministic
  (a data check or a quality gate): the Snakefile never retries it.

Not supported (a clear error is raised): ``foreach``/``matrix`` stages and
dict/list interpolation in ``cmd``; none are used in this project's dvc.yaml.
``frozen`` and ``always_changed`` have no Snakemake equivalent and are ignored.
"""
from __future__ import annotations

import json
import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.config import lookup, read_yaml
from lmforge.stage import InputError

DEFAULT_PARAMS = "params.yaml"
STAMP_DIR = ".snakemake/dvc-stages"

_INTERP = re.compile(r"(?<!\\)\$\{\s*([^}]+?)\s*\}")
_NAME_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class DvcYamlError(InputError):
    """dvc.yaml (or a params file it names) cannot be turned into rules."""


LOG_DIR = "logs"


def with_log(shell: str, log: str) -> str:
    return f"set -o pipefail; ( {shell} ) 2>&1 | tee {log}"


@dataclass(frozen=True)
class RuleSpec:
    """Everything the Snakefile needs for one rule (paths relative to the root)."""

    name: str
    cmd: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    output_dirs: frozenset[str]
    params: dict[str, Any]
    threads: int = 1
    resources: dict[str, Any] = field(default_factory=dict)
    stamp: str | None = None
    retries: int | None = None   # meta.retries; None: the profile's --retries

    @property
    def submit_resources(self) -> dict[str, Any]:
        """Resources as Snakemake submits them: ``gpu: N`` (+ ``gpu_model: M``) as ``gres: gpu:[M:]N``
        (per node), and with GPUs ``mem_mb_per_gpu`` as ``mem_mb`` = N x it (the plugin knows
        ``cpus_per_gpu`` itself)."""
        res = dict(self.resources)
        gpus, model = res.pop("gpu", 0), res.pop("gpu_model", None)
        per_gpu = res.pop("mem_mb_per_gpu", None)
        if gpus and "gres" not in res:
            res["gres"] = f"gpu:{model}:{gpus}" if model else f"gpu:{gpus}"
        elif gpus:
            raise DvcYamlError(f"stage '{self.name}': meta.resources sets both gpu and gres; keep one")
        if gpus and per_gpu:
            res["mem_mb"] = int(gpus) * int(per_gpu)
        if not gpus:
            res.pop("cpus_per_gpu", None)
        return res

    @property
    def log(self) -> str:
        """The rule's log file: the stage's stdout and stderr, kept on success too."""
        return f"{LOG_DIR}/{self.name}.log"

    @property
    def logged_shell(self) -> str:
        """What the Snakefile runs: :attr:`shell`, its output shown and copied to :attr:`log`."""
        return with_log(self.shell, self.log)

    @property
    def params_json(self) -> str:
        """Canonical JSON of the stage's params (what Snakemake compares)."""
        return json.dumps(self.params, sort_keys=True, separators=(",", ":"))

    @property
    def shell(self) -> str:
        """The command Snakemake runs (dvc.yaml's cmd, plus the stamp if any)."""
        if self.stamp is None:
            return self.cmd
        d = posixpath.dirname(self.stamp)
        return f"{self.cmd} && mkdir -p {d} && touch {self.stamp}"


@dataclass
class _Out:
    path: str
    persist: bool


def _norm(base: str, p: str) -> str:
    p = str(p)
    if os.path.isabs(p):
        raise DvcYamlError(f"absolute path {p!r} is not supported in dvc.yaml")
    return posixpath.normpath(posixpath.join(base, p.rstrip("/"))) if base else posixpath.normpath(p)


def _under(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip("/") + "/") or parent == "."


def _lookup(data: Any, dotted: str, where: str) -> Any:
    return lookup(data, dotted, where, error=DvcYamlError)


def _read_yaml(path: Path, where: str) -> dict:
    return read_yaml(path, where, error=DvcYamlError)


class _Params:
    """Lazy reader of params files relative to the dvc.yaml folder."""

    def __init__(self, root: Path):
        self.root = root
        self._cache: dict[str, dict] = {}

    def file(self, name: str, where: str) -> dict:
        if name not in self._cache:
            self._cache[name] = _read_yaml(self.root / name, where)
        return self._cache[name]


def _context(doc: dict, params: _Params, path: Path) -> dict:
    """Interpolation context: params.yaml (if present) updated with ``vars``."""
    ctx: dict = {}
    if (params.root / DEFAULT_PARAMS).exists():
        ctx.update(params.file(DEFAULT_PARAMS, str(path)))
    for entry in doc.get("vars") or []:
        if isinstance(entry, dict):
            ctx.update(entry)
        elif isinstance(entry, str):
            fname, _, keys = entry.partition(":")
            data = params.file(fname, f"{path}: vars")
            if keys:
                for k in keys.split(","):
                    ctx[k.strip()] = _lookup(data, k.strip(), f"{path}: vars")
            else:
                ctx.update(data)
        else:
            raise DvcYamlError(f"{path}: vars entries must be mappings or file names")
    return ctx


def _interpolate(value: Any, ctx: dict, where: str, used: set[str]) -> Any:
    if isinstance(value, list):
        return [_interpolate(v, ctx, where, used) for v in value]
    if isinstance(value, dict):  # keys too: an out with options is a one-key mapping
        return {_interpolate(k, ctx, where, used): _interpolate(v, ctx, where, used) for k, v in value.items()}
    if not isinstance(value, str) or "${" not in value:
        return value

    def sub(m: re.Match) -> str:
        key = m.group(1)
        v = _lookup(ctx, key, where)
        if isinstance(v, (dict, list)):
            raise DvcYamlError(f"{where}: '${{{key}}}' is a {type(v).__name__}; only scalars are supported")
        used.add(key)
        return str(v).lower() if isinstance(v, bool) else str(v)

    whole = _INTERP.fullmatch(value.strip())
    if whole:  # a lone ${x} keeps the value's type, as in DVC
        v = _lookup(ctx, whole.group(1), where)
        if not isinstance(v, (dict, list)):
            used.add(whole.group(1))
            return v
    return _INTERP.sub(sub, value).replace("\\${", "${")


def _paths(entries: Any, base: str, where: str) -> list[_Out]:
    out: list[_Out] = []
    for e in entries or []:
        if isinstance(e, str):
            out.append(_Out(_norm(base, e), False))
        elif isinstance(e, dict) and len(e) == 1:
            (p, opts), = e.items()
            opts = opts or {}
            out.append(_Out(_norm(base, p), bool(opts.get("persist", False))))
        else:
            raise DvcYamlError(f"{where}: cannot read path entry {e!r}")
    return out


def _stage_params(spec: Any, params: _Params, where: str, base: str) -> dict[str, Any]:
    """{file:key: value} for a stage's ``params`` (files relative to its wdir)."""
    vals: dict[str, Any] = {}
    default = _norm(base, DEFAULT_PARAMS)
    for e in spec or []:
        if isinstance(e, str):
            vals[f"{default}:{e}"] = _lookup(params.file(default, where), e, where)
        elif isinstance(e, dict):
            for fname, keys in e.items():
                fname = _norm(base, fname)
                data = params.file(fname, where)
                if not keys:  # "- other.yaml:" tracks the whole file
                    vals[f"{fname}:*"] = data
                for k in keys or []:
                    vals[f"{fname}:{k}"] = _lookup(data, k, where)
        else:
            raise DvcYamlError(f"{where}: cannot read params entry {e!r}")
    return vals


def is_dir_path(path: str, root: Path) -> bool:
    """Whether a dvc.yaml path names a folder.

    An existing path answers for itself; otherwise a name without a file
    extension (``data/curated``, ``models/tokenizer``) is taken as a folder.
    """
    p = root / path
    if p.exists():
        return p.is_dir()
    return posixpath.splitext(posixpath.basename(path))[1] == ""


def _resources(meta: Any, where: str) -> tuple[int, dict[str, Any]]:
    """``threads`` and the other resources of an (interpolated) ``meta`` block; empty values dropped."""
    meta = meta or {}
    res = dict((meta.get("resources") or {}) if isinstance(meta, dict) else {})
    res = {k: v for k, v in res.items() if v is not None and v != ""}
    for k in res:
        if not _NAME_OK.match(str(k)):
            raise DvcYamlError(f"{where}: meta.resources key {k!r} is not a valid name")
    threads = res.pop("threads", 1)
    if not isinstance(threads, int) or threads < 1:
        raise DvcYamlError(f"{where}: meta.resources.threads must be a positive integer, got {threads!r}")
    return threads, res


def _raw_stage(name: str, stage: Any, ctx: dict, params: "_Params", path: Path) -> dict:
    """One dvc.yaml stage with ``${…}`` resolved: its command, deps, outs, params and resources."""
    where = f"{path}: stage '{name}'"
    if not _NAME_OK.match(name):
        raise DvcYamlError(f"{where}: name must be a Python identifier to become a Snakemake rule")
    if not isinstance(stage, dict) or "cmd" not in stage:
        kind = "foreach/matrix" if isinstance(stage, dict) and ({"foreach", "matrix"} & stage.keys()) else "cmd-less"
        raise DvcYamlError(f"{where}: {kind} stages are not supported by the Snakefile translation")
    used: set[str] = set()
    resolved = {k: _interpolate(v, ctx, where, used) for k, v in stage.items() if k != "meta"}
    base = _norm("", str(resolved.get("wdir", "."))) if resolved.get("wdir") else ""
    cmd = resolved["cmd"]
    cmd = " && ".join(str(c) for c in cmd) if isinstance(cmd, list) else str(cmd)
    if base and base != ".":
        cmd = f"cd {base} && {cmd}"
    # Interpolated values land in cmd, which Snakemake compares too (as DVC does).
    pvals = _stage_params(resolved.get("params"), params, where, base)
    outs = _paths(resolved.get("outs"), base, where)
    outs += _paths(resolved.get("metrics"), base, where) + _paths(resolved.get("plots"), base, where)
    meta = _interpolate(stage.get("meta"), ctx, where, used)
    threads, res = _resources(meta, where)
    retries = meta.get("retries") if isinstance(meta, dict) else None
    if retries is not None and (not isinstance(retries, int) or isinstance(retries, bool) or retries < 0):
        raise DvcYamlError(f"{where}: meta.retries must be an integer >= 0, got {retries!r}")
    return dict(cmd=cmd, deps=[d.path for d in _paths(resolved.get("deps"), base, where)],
                outs=outs, params=pvals, threads=threads, resources=res, retries=retries)


def _inputs(name: str, raw: dict[str, dict], produced: dict[str, list[str]]) -> list[str]:
    """Snakemake inputs of stage ``name``: its deps, linked to the outputs of the stages that make them."""
    inputs: list[str] = []
    for dep in raw[name]["deps"]:
        linked = False
        for other, o in raw.items():
            if other == name:
                continue
            for out in o["outs"]:
                if _under(dep, out.path) or _under(out.path, dep):
                    linked = True
                    if out.persist:  # not a Snakemake output: depend on the stage's others
                        inputs.extend(produced[other])
                    elif _under(dep, out.path):
                        inputs.append(out.path)
                    else:
                        inputs.extend([dep, out.path])
        if not linked:
            inputs.append(dep)
    return list(dict.fromkeys(inputs))


def rules_from_dvc(dvc_yaml: str | os.PathLike = "dvc.yaml") -> list[RuleSpec]:
    """Translate every stage of ``dvc_yaml`` into a :class:`RuleSpec`.

    Paths in the result are relative to the folder holding ``dvc_yaml``.
    """
    path = Path(dvc_yaml)
    root = path.parent
    doc = _read_yaml(path, "dvc.yaml")
    stages = doc.get("stages") or {}
    if not isinstance(stages, dict):
        raise DvcYamlError(f"{path}: 'stages' must be a mapping")
    params = _Params(root)
    ctx = _context(doc, params, path)
    raw = {name: _raw_stage(name, stage, ctx, params, path) for name, stage in stages.items()}

    # Snakemake outputs: non-persistent outs, or a stamp when a stage has none.
    produced: dict[str, list[str]] = {}
    stamps: dict[str, str | None] = {}
    for name, r in raw.items():
        real = [o.path for o in r["outs"] if not o.persist]
        stamps[name] = None if real else f"{STAMP_DIR}/{name}.done"
        produced[name] = real or [stamps[name]]

    specs: list[RuleSpec] = []
    for name, r in raw.items():
        outputs = produced[name]
        specs.append(RuleSpec(
            name=name, cmd=r["cmd"], inputs=tuple(_inputs(name, raw, produced)), outputs=tuple(outputs),
            output_dirs=frozenset(o for o in outputs if o != stamps[name] and is_dir_path(o, root)),
            params=r["params"], threads=r["threads"], resources=r["resources"], stamp=stamps[name],
            retries=r["retries"]))
    return specs


def edges(specs: list[RuleSpec]) -> set[tuple[str, str]]:
    """(upstream, downstream) stage pairs implied by inputs and outputs."""
    owner = {o: s.name for s in specs for o in s.outputs}
    return {(owner[i], s.name) for s in specs for i in s.inputs if i in owner and owner[i] != s.name}


def dvc_commit_command(stages: list[str], dvc: str = "dvc") -> list[str]:
    """The command that records in dvc.lock the outputs Snakemake built.

    SLURM jobs cannot each run ``dvc repro``: DVC holds one repository lock. So
    jobs run the stage commands, and afterwards (the Snakefile's ``onsuccess``)
    this commits the stages of the finished run; ``dvc status`` is then clean
    and ``dvc push`` versions the outputs.
    """
    return [dvc, "commit", "--force", "--quiet", *stages]


def main(argv: list[str] | None = None) -> int:
    """Print the translation (``python -m lmforge.orchestrate [dvc.yaml]``)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    for s in rules_from_dvc(args[0] if args else "dvc.yaml"):
        print(f"rule {s.name}: threads={s.threads} resources={s.resources}")
        print(f"  shell:   {s.shell}")
        print(f"  input:   {list(s.inputs)}")
        print(f"  output:  {[('directory:' if o in s.output_dirs else '') + o for o in s.outputs]}")
        print(f"  params:  {s.params_json}")
    print("# after a Snakemake run, record the outputs in dvc.lock with: "
          + " ".join(dvc_commit_command(["<stage>", "..."])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
