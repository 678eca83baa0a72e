"""Typed, validated access to params.yaml.

Every stage reads one section of params.yaml into a dataclass. Unknown keys,
wrong types and out-of-range values fail at start with a message that names the
key (``params.yaml: data.dedup.bands: expected int, got 'x'``), so a typo never
silently falls back to a default. Sections declare their own dataclasses next to
the code that uses them; this module only knows how to build and check them.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lmforge.stage import InputError

T = TypeVar("T")
PARAMS_FILE = os.environ.get("LMFORGE_PARAMS", "params.yaml")


class ParamsError(InputError):
    """A parameter is missing, unknown, of the wrong type or out of range."""


class ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader that reads numbers as DVC does (ruamel.yaml, YAML 1.2): ``1e-3``
    and ``5e-05`` are floats, not strings. DVC writes floats that way itself (``dvc exp run
    -S lr=0.00005`` leaves ``lr: 5e-05``), so the stages must read what DVC writes."""


ParamsLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
               r"|[0-9][0-9_]*[eE][-+]?[0-9]+|\.(?:inf|Inf|INF)|[-+]\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def read_yaml(path: str | os.PathLike, where: str = "", error: type[Exception] = None) -> dict:
    """A YAML file whose top level is a mapping; ``error`` (default ParamsError) otherwise."""
    err = error or ParamsError
    p = Path(path)
    if not p.exists():
        raise err(f"{where or p}: file not found: {p}" if where else f"{p}: parameter file not found (run from the repository root)")
    with open(p) as f:
        data = yaml.load(f, Loader=ParamsLoader) or {}
    if not isinstance(data, dict):
        raise err(f"{p}: top level must be a mapping")
    return data


def load_params(path: str | os.PathLike | None = None) -> dict:
    return read_yaml(path or PARAMS_FILE)


def lookup(data: Any, dotted: str, where: str, error: type[Exception] = None) -> Any:
    """``data[a][b]...`` for ``"a.b"`` (list items as ``a.0`` or ``a[0]``), DVC's key syntax."""
    node = data
    for part in re.findall(r"[^.\[\]]+", dotted):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise (error or ParamsError)(f"{where}: missing key '{dotted}'")
    return node


def _number_hint(value: Any) -> str:
    """Why a number came back a string: YAML 1.1 reads ``1e-3`` (no dot) as text."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return (f" (YAML reads {value} as a string: write it with a dot and a signed exponent, "
                f"e.g. {float(value):.1e}, or as {float(value)!r})")
    return ""


def did_you_mean(unknown: str, known: typing.Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known key, or ``""``."""
    close = difflib.get_close_matches(unknown, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# Plain types a params value is checked against as it is, with the word an error names.
_PLAIN = {bool: "true or false", str: "a string", dict: "a mapping", list: "a list"}


def _check(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check(value, a, key)
            except ParamsError as e:
                errors.append(str(e))
        raise ParamsError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ParamsError(f"{key}: expected one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{key}: expected a list, got {value!r}")
        (inner, *_) = typing.get_args(tp) or (Any,)
        return [_check(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{key}: expected a mapping, got {value!r}")
        _, vt = typing.get_args(tp) or (Any, Any)
        return {k: _check(v, vt, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}: expected a number, got {value!r}{_number_hint(value)}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key}: expected an integer, got {value!r}{_number_hint(value)}")
        return value
    if tp in _PLAIN and not isinstance(value, tp):
        raise ParamsError(f"{key}: expected {_PLAIN[tp]}, got {value!r}")
    return value



def build(cls: type[T], data: Any, key: str) -> T:
    """Build dataclass ``cls`` from ``data``; ``key`` names it in errors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{key}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        hints = [f"'{u}'{did_you_mean(u, fields)}" for u in unknown if did_you_mean(u, fields)]
        raise ParamsError(f"{key}: unknown key(s) {unknown}{' - ' + ', '.join(hints) if hints else ''}; "
                          f"known: {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _check(data[name], hints[name], f"{key}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ParamsError(f"{key}: missing required key '{name}'")
    try:
        return cls(**kwargs)
    except ParamsError:
        raise
    except (ValueError, TypeError) as e:
        raise ParamsError(f"{key}: {e}") from e


def section(cls: type[T], name: str, params: dict | None = None, path: str | None = None) -> T:
    """Read dotted section ``name`` of params.yaml into dataclass ``cls``."""
    where = f"{path or PARAMS_FILE}: {name}"
    params = load_params(path) if params is None else params
    return build(cls, lookup(params, name, where), where)


def value(dotted: str, tp: Any, params: dict | None = None, path: str | None = None) -> Any:
    """One typed value of params.yaml by dotted key (``value("harvest.store", str)``)."""
    where = f"{path or PARAMS_FILE}: {dotted}"
    params = load_params(path) if params is None else params
    return _check(lookup(params, dotted, where), tp, where)


def require(cond: bool, msg: str) -> None:
    """Range checks in ``__post_init__``: raise ParamsError with ``msg`` unless ``cond``."""
    if not cond:
        raise ParamsError(msg)
