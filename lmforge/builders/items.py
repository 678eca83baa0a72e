"""Evaluation items built offline from what this machine has installed, held out from training.

Why here and not downloaded: the pipeline runs without network, and an evaluation is only
worth something if its items are not in the training data. Each builder below returns plain
rows for one lm-evaluation-harness task (``evals/tasks/*.yaml``), deterministically for a
given seed and machine, and leaves out what lmforge trains on:

- ``manpages_mc``: "What does `cmd` do?" with the man page's NAME line and three NAME lines
  of other pages as distractors. Only ~1,200 pages here have a machine-readable licence and
  most of them were mined for SFT pairs too, so this set overlaps the SFT data: the
  decontamination step (lmforge/decontam.py) drops those pairs, the eval items win.
  Every row names its Debian package and licence, so it is rebuildable.
- ``docstrings_mc``: the same question about public stdlib functions, answered by the first
  line of their docstring (``inspect.getdoc``), from modules the SFT pairs do not use.
- ``pydoc_bpb``: held-out documents for bits per byte: Python documentation sources
  (``python3.11-doc`` ``_sources/*.rst.txt``) of pages that are not in ``data/sample``.
- ``refusal``: the refusal prompts the ``instructions`` stage holds out as its safety split.

Rows carry ``decontam_text`` (or ``text``): what curation's decontamination step indexes.
"""
from __future__ import annotations

import glob
import hashlib
import importlib
import inspect
import json
import os
import random
import re
import sys
from pathlib import Path

from lmforge.builders import sources

# stdlib modules for docstrings_mc: none of them in scripts/build_instructions.py DOC_MODULES
DOCSTRING_MODULES = [
    "abc", "array", "ast", "asyncio", "binascii", "builtins", "bz2", "cmath", "codecs", "colorsys",
    "compileall", "concurrent.futures", "configparser", "contextvars", "copyreg", "ctypes", "dis",
    "doctest", "email.utils", "ensurepip", "errno", "faulthandler", "filecmp", "fileinput", "gc",
    "getopt", "getpass", "gettext", "graphlib", "hmac", "html.parser", "http.cookies", "imaplib",
    "importlib", "importlib.util", "io", "ipaddress", "keyword", "linecache", "locale", "lzma",
    "mailbox", "marshal", "mimetypes", "multiprocessing", "netrc", "numbers", "os", "pickle",
    "pickletools", "pkgutil", "platform", "plistlib", "posixpath", "queue", "quopri", "reprlib",
    "sched", "secrets", "select", "selectors", "signal", "site", "smtplib", "socket", "ssl", "stat",
    "struct", "symtable", "sys", "sysconfig", "tabnanny", "threading", "token", "tokenize", "trace",
    "traceback", "tracemalloc", "types", "unittest", "urllib.request", "warnings", "wave", "weakref",
    "webbrowser", "wsgiref.util", "xml.dom.minidom", "xml.etree.ElementTree", "zipimport", "zlib",
]
PYDOC_URL = re.compile(r"docs\.python\.org/3\.11/(?:_sources/)?(.+?)(?:\.rst\.txt|\.html)$")


def _stable(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()


def sft_origins(pairs: str) -> set[str]:
    """Origins of the committed SFT pairs (man page paths, ``pythonX.Y:module.name``)."""
    import pandas as pd

    return set(pd.read_parquet(pairs, columns=["origin"]).origin) if Path(pairs).exists() else set()


def multiple_choice(facts: list[dict], n: int, seed: int, task: str) -> list[dict]:
    """Up to ``n`` four-way items from ``facts`` ({subject, answer, origin, licence}).

    The three distractors are answers of other facts that differ from the true one (case-
    and punctuation-insensitively), so the four choices are distinct; the true answer's
    position is drawn from the same seeded generator."""
    rng = random.Random(seed)
    facts = sorted(facts, key=lambda f: _stable(f["subject"]))
    norm = [re.sub(r"\W+", " ", f["answer"].lower()).strip() for f in facts]
    rows = []
    for i, f in enumerate(facts[:n]):
        seen, distractors = {norm[i]}, []
        while len(distractors) < 3:
            j = rng.randrange(len(facts))
            if norm[j] not in seen:
                seen.add(norm[j])
                distractors.append(facts[j]["answer"])
        gold = rng.randrange(4)
        choices = distractors[:gold] + [f["answer"]] + distractors[gold:]
        rows.append({"id": f"{task}-{i:04d}", "question": f"What does `{f['subject']}` do?", "choices": choices,
                     "answer": gold, "decontam_text": f["answer"],
                     "origin": f["origin"], "licence": f["licence"]})
    return rows


def man_facts(man_dir: str) -> list[dict]:
    """(command, NAME description) of man1/man8 pages with a known Debian package and licence."""
    owners = sources.package_of_files()
    facts, seen_real, seen_cmd = [], set(), set()
    paths = glob.glob(os.path.join(man_dir, "man1", "*.gz")) + glob.glob(os.path.join(man_dir, "man8", "*.gz"))
    for path in sorted(paths):
        real = os.path.realpath(path)
        if os.path.islink(path) or real in seen_real:
            continue
        seen_real.add(real)
        pkg = owners.get(path) or owners.get(real)
        licence = sources.debian_licence(pkg) if pkg else None
        secs = sources.man_sections(path) if licence else None
        parsed = sources.name_line(secs) if secs else None
        if not parsed or parsed[0] in seen_cmd or not 2 <= len(parsed[1].split()) <= 20:
            continue
        seen_cmd.add(parsed[0])
        facts.append({"subject": parsed[0], "answer": parsed[1], "origin": f"{path} (Debian package {pkg})",
                      "licence": licence})
    return facts


def docstring_facts(modules: list[str], exclude: set[str]) -> list[dict]:
    """(module.function, first docstring line) of public functions defined in ``modules``."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    facts, seen = [], set()
    for modname in modules:
        mod = importlib.import_module(modname)
        for name, obj in sorted(vars(mod).items()):
            qual = f"{modname}.{name}"
            if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isbuiltin(obj)):
                continue
            if (getattr(obj, "__module__", None) or "").lstrip("_") not in (modname, modname.split(".")[-1]):
                continue  # re-exported from elsewhere
            first = (inspect.getdoc(obj) or "").strip().split("\n")[0].strip()
            if f"{version}:{qual}" in exclude or len(first.split()) < 3 or "(" in first.split()[0]:
                continue
            if first.endswith(")") and first.startswith(name):
                continue  # a signature line, not a description
            if first in seen:
                continue
            seen.add(first)
            facts.append({"subject": qual, "answer": first.rstrip("."), "origin": f"{version}:{qual}",
                          "licence": sources.PSF})
    return facts


def crawled_pydoc_pages(crawl_glob: str) -> set[str]:
    """Page paths (``library/json``) of Python doc pages in the crawl sample (WARC and JSONL)."""
    from warcio.archiveiterator import ArchiveIterator

    urls = []
    for path in sorted(glob.glob(crawl_glob)):
        if path.endswith(".warc.gz"):
            with open(path, "rb") as f:
                urls += [r.rec_headers.get_header("WARC-Target-URI") for r in ArchiveIterator(f)
                         if r.rec_type == "response"]
        elif path.endswith(".jsonl"):
            urls += [json.loads(line).get("url") or "" for line in Path(path).read_text().splitlines()]
    return {m.group(1) for u in urls if (m := PYDOC_URL.search(u or ""))}


def pydoc_documents(sources_dir: str, crawled: set[str], n: int, max_chars: int) -> list[dict]:
    """Up to ``n`` Python doc sources not crawled, each cut at a paragraph end below ``max_chars``."""
    files = sorted(glob.glob(os.path.join(sources_dir, "**", "*.rst.txt"), recursive=True))
    if not files:
        raise FileNotFoundError(f"{sources_dir}: no *.rst.txt (install Debian python3.11-doc)")
    pages = [(os.path.relpath(f, sources_dir)[:-len(".rst.txt")], f) for f in files]
    pages = sorted((p for p in pages if p[0] not in crawled), key=lambda p: _stable(p[0]))
    rows = []
    for page, path in pages:
        text = Path(path).read_text(errors="replace").strip()
        cut = text[:max_chars]
        if len(text) > max_chars and "\n\n" in cut:
            cut = cut[:cut.rindex("\n\n")]
        if len(cut) < 500:
            continue
        rows.append({"id": f"pydoc_bpb-{len(rows):04d}", "text": cut.strip() + "\n",
                     "origin": f"{path} (Debian package python3.11-doc)", "licence": sources.PSF})
        if len(rows) == n:
            break
    return rows


def refusal_prompts(refusals: str, safety_fraction: float) -> list[dict]:
    """The refusal prompts the instructions stage holds out as ``safety`` (same hash split)."""
    from lmforge.align.instructions import in_safety_split

    rows = [json.loads(line) for line in Path(refusals).read_text().splitlines() if line.strip()]
    return [{"id": f"refusal-{i:04d}", "prompt": r["prompt"], "decontam_text": r["prompt"],
             "origin": f"{refusals}:{i + 1}", "licence": "CC0-1.0 (written for lmforge)"}
            for i, r in enumerate(rows) if in_safety_split(r["prompt"], safety_fraction)]


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Byte-stable JSONL (sorted keys, UTF-8, one row a line), written atomically."""
    from lmforge.io import write_text

    write_text(str(path), "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows))

