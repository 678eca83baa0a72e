"""params.yaml sections: unknown keys, wrong types and range errors name the key."""
from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from lmforge.config import ParamsError, build, load_params, require, section


@dataclass
class Inner:
    threshold: float = 0.8
    bands: int = 14


@dataclass
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    mode: Literal["local", "slurm"] = "local"
    langs: list[str] = field(default_factory=lambda: ["en"])
    limit: Optional[int] = None

    def __post_init__(self):
        require(0 < self.inner.threshold <= 1, f"inner.threshold must be in (0, 1], got {self.inner.threshold}")


def test_builds_nested_and_defaults():
    o = build(Outer, {"name": "x", "inner": {"bands": 7}, "langs": ["en", "fr"]}, "s")
    assert o.inner.bands == 7 and o.inner.threshold == 0.8 and o.langs == ["en", "fr"]
    assert o.mode == "local" and o.limit is None


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"name": "x", "typo": 1}, "unknown key(s) ['typo']"),
        ({"name": "x", "inner": {"bands": "many"}}, "s.inner.bands: expected an integer"),
        ({"name": "x", "mode": "cloud"}, "s.mode: expected one of"),
        ({}, "missing required key 'name'"),
        ({"name": "x", "inner": {"threshold": 2.0}}, "inner.threshold must be in (0, 1]"),
        ({"name": "x", "langs": "en"}, "s.langs: expected a list"),
        ({"name": "x", "inner": {"bands": True}}, "expected an integer"),
    ],
)
def test_errors_name_the_key(data, needle):
    with pytest.raises(ParamsError) as e:
        build(Outer, data, "s")
    assert needle in str(e.value)


def test_section_reads_dotted_path(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("a:\n  b:\n    name: y\n")
    assert section(Outer, "a.b", path=str(p)).name == "y"
    with pytest.raises(ParamsError, match="missing key 'a.c'"):
        section(Outer, "a.c", path=str(p))


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_repository_params_parse():
    params = load_params("params.yaml")
    assert "data" in params and params["data"]["sources"]
