"""The committed eval items: rebuilt byte for byte (man pages: where the same packages are
installed), big enough, well-formed and held out."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from lmforge.decontam import read_jsonl

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "evals" / "data"
MC = ["manpages_mc", "docstrings_mc"]


def _build(out: Path) -> dict[str, str]:
    subprocess.run([sys.executable, "scripts/build_evals.py", "--out", str(out)], cwd=REPO, check=True,
                   capture_output=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.jsonl"))}


@pytest.mark.skipif(not Path("/usr/share/doc/python3.11/html/_sources").is_dir() or
                    not Path("/usr/share/man/man1").is_dir(), reason="needs man pages and python3.11-doc")
def test_builder_is_deterministic_and_rebuilds_the_committed_files(tmp_path):
    first, second = _build(tmp_path / "a"), _build(tmp_path / "b")
    assert first == second and len(first) == 4
    committed = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(DATA.glob("*.jsonl"))}
    # The man-page items depend on which Debian packages a machine has installed (each item
    # names its package); the other sets come from Python 3.11, python3.11-doc and the repo.
    same_everywhere = [n for n in committed if n != "manpages_mc.jsonl"]
    assert {n: first[n] for n in same_everywhere} == {n: committed[n] for n in same_everywhere}


@pytest.mark.parametrize("task", MC)
def test_multiple_choice_items(task):
    rows = read_jsonl(DATA / f"{task}.jsonl")
    assert len(rows) >= 500
    assert len({r["id"] for r in rows}) == len(rows) and len({r["question"] for r in rows}) == len(rows)
    for r in rows:
        norm = {c.lower().strip() for c in r["choices"]}
        assert len(r["choices"]) == 4 and len(norm) == 4, r
        assert r["answer"] in range(4) and r["choices"][r["answer"]] == r["decontam_text"], r
        assert r["licence"] and r["origin"]
    golds = [r["answer"] for r in rows]
    assert min(golds.count(i) for i in range(4)) > len(rows) / 8   # the true answer is not always first


def test_man_items_name_their_debian_package():
    rows = read_jsonl(DATA / "manpages_mc.jsonl")
    assert all("(Debian package " in r["origin"] and r["origin"].startswith("/usr/share/man/") for r in rows)


def test_docstring_items_avoid_the_sft_modules():
    sys.path.insert(0, str(REPO / "scripts"))
    from build_instructions import DOC_MODULES

    modules = {r["origin"].split(":")[1].rsplit(".", 1)[0] for r in read_jsonl(DATA / "docstrings_mc.jsonl")}
    assert modules and not modules & set(DOC_MODULES)


def test_bpb_documents_are_not_in_the_crawl_sample():
    from lmforge.builders.items import crawled_pydoc_pages

    crawled = crawled_pydoc_pages(str(REPO / "data/sample/crawl/pydoc*"))
    rows = read_jsonl(DATA / "pydoc_bpb.jsonl")
    pages = {r["origin"].split("_sources/")[1].split(".rst.txt")[0] for r in rows}
    assert len(crawled) > 100 and len(pages) == len(rows) >= 100 and not pages & crawled


def test_refusal_prompts_are_the_held_out_safety_split():
    from lmforge.align.instructions import InstructionsConfig, in_safety_split

    frac = InstructionsConfig().safety_fraction
    all_prompts = [r["prompt"] for r in read_jsonl(REPO / "data/instructions/refusals.jsonl")]
    held = [r["prompt"] for r in read_jsonl(DATA / "refusal.jsonl")]
    assert held == [p for p in all_prompts if in_safety_split(p, frac)] and 0 < len(held) < len(all_prompts)
