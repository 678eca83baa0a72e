"""Shared helpers for the orchestration tests: a tiny DVC+git repo and CLI runners.

The tiny repo has its own three cheap stages and params.yaml, and the project's
real Snakefile, lmforge/orchestrate.py, profiles/ and .dvc config (with the
offline plots template) copied in, so Snakemake, DVC and the SLURM executor run
for real in seconds, whatever state the main pipeline is in.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FAKE_SLURM = Path(__file__).parent / "fake_slurm"   # only for two nodes on separate addresses (test_two_nodes)
# The scratch repos' own git identity (a fresh machine or CI's empty HOME has no global one):
# set in each repo's config, and in the environment for the clones that `dvc exp` queues make.
GIT_IDENTITY = {"name": "lmforge tests", "email": "tests@lmforge.invalid"}

TINY_DVC_YAML = """\
stages:
  prepare:
    cmd: python src/prepare.py
    deps: [src/prepare.py]
    params: [prepare.n]
    outs: [data/raw]
    meta: {resources: {threads: 1, mem_mb: 100, runtime: 5}}
  count:
    cmd: python src/count.py --label ${count.label}
    deps: [src/count.py, data/raw]
    params: [count.scale]
    metrics: [{metrics/count.json: {cache: false}}]
    plots: [{metrics/count.csv: {cache: false, x: step, y: value}}]
  words:
    cmd: [python src/words.py, echo words-done]
    deps: [src/words.py]
    params: [words]
    outs: [data/words.txt]
"""
TINY_PARAMS = "prepare:\n  n: 3\ncount:\n  scale: 2\n  label: docs\nwords:\n  upper: false\n"
TINY_SRC = {
    "src/prepare.py": (
        "import os, yaml\n"
        "n = yaml.safe_load(open('params.yaml'))['prepare']['n']\n"
        "os.makedirs('data/raw', exist_ok=True)\n"
        "for i in range(n):\n"
        "    open(f'data/raw/{i}.txt', 'w').write(f'doc {i}\\n')\n"),
    "src/count.py": (
        "import json, os, sys, yaml\n"
        "scale = yaml.safe_load(open('params.yaml'))['count']['scale']\n"
        "docs = sorted(f for f in os.listdir('data/raw') if f.endswith('.txt'))\n"
        "os.makedirs('metrics', exist_ok=True)\n"
        "json.dump({'docs': len(docs), 'score': scale * len(docs), 'label': sys.argv[2]},\n"
        "          open('metrics/count.json', 'w'))\n"
        "rows = ['step,value'] + [f'{i},{scale * (i + 1)}' for i in range(len(docs))]\n"
        "open('metrics/count.csv', 'w').write('\\n'.join(rows) + '\\n')\n"),
    "src/words.py": (
        "import os, yaml\n"
        "up = yaml.safe_load(open('params.yaml'))['words']['upper']\n"
        "os.makedirs('data', exist_ok=True)\n"
        "open('data/words.txt', 'w').write('HELLO\\n' if up else 'hello\\n')\n"),
}


def env(extra_path: list[Path] | None = None, **kw: str) -> dict:
    e = dict(os.environ)
    e["PATH"] = os.pathsep.join([*(str(p) for p in extra_path or []), str(BIN), e.get("PATH", "")])
    e.update(OMP_NUM_THREADS="1", DVC_NO_ANALYTICS="1", PYTHONDONTWRITEBYTECODE="1", **kw)
    for who in ("AUTHOR", "COMMITTER"):
        e.setdefault(f"GIT_{who}_NAME", GIT_IDENTITY["name"])
        e.setdefault(f"GIT_{who}_EMAIL", GIT_IDENTITY["email"])
    e.pop("SLURM_JOB_ID", None)
    return e


def run(cmd: list[str] | str, cwd: Path, check: bool = True, timeout: int = 240, **kw) -> subprocess.CompletedProcess:
    """Run a CLI command; on failure show its output in the assertion."""
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       shell=isinstance(cmd, str), env=kw.pop("env", None) or env(), **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    return p


def start_queue(repo: Path, environ: dict | None = None, jobs: int = 1) -> None:
    """`dvc queue start -j N`, its output to a file: the worker it detaches inherits the
    output, so with pipes (``capture_output``) the call would last until the queue is done."""
    log = repo.parent / f"{repo.name}-queue-start.log"
    with open(log, "w") as out:
        p = subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], cwd=repo, env=environ or env(),
                           stdout=out, stderr=subprocess.STDOUT, timeout=240)
    assert p.returncode == 0, log.read_text()


def wait_for_queue(repo: Path, names: set[str], environ: dict | None = None, seconds: int = 300) -> None:
    """Until `dvc queue status` says Success for every one of ``names``. Polled gently (each DVC
    call costs a second or two of CPU that the queued runs need), and not with `dvc exp show`,
    which fails while the worker creates or removes a run's temporary copy."""
    deadline = time.monotonic() + seconds
    while True:
        status = run(["dvc", "queue", "status"], repo, check=False, env=environ).stdout
        done = {n for n in names for line in status.splitlines() if n in line.split() and "Success" in line}
        if done == names:
            return
        assert "Failed" not in status and time.monotonic() < deadline, status
        time.sleep(5)


def exp_show(repo: Path, environ: dict | None = None, tries: int = 10) -> list:
    """`dvc exp show --json`, retried while a queue worker is still removing a temporary copy
    (DVC then fails with "directory '.dvc/tmp/exps/...' does not exist")."""
    for _ in range(tries - 1):
        p = run(["dvc", "exp", "show", "--json"], repo, check=False, env=environ)
        if p.returncode == 0 or "does not exist" not in p.stderr:
            break
        time.sleep(3)
    else:
        p = run(["dvc", "exp", "show", "--json"], repo, env=environ)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout)


def git_init(repo: Path) -> None:
    """A scratch git repo with its own identity: `git commit` and `dvc exp run` (which commits)
    must not depend on a global identity, which a fresh machine or CI's empty HOME lacks."""
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    for key, value in GIT_IDENTITY.items():
        subprocess.run(["git", "config", f"user.{key}", value], cwd=repo, check=True)


def git_commit(repo: Path, msg: str) -> str:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", msg], repo)
    return run(["git", "rev-parse", "HEAD"], repo).stdout.strip()


def copy_orchestration(dst: Path) -> None:
    """The project's Snakefile and its translation module (with the params loader it reads
    YAML through), profiles and DVC config."""
    (dst / "lmforge").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Snakefile", dst / "Snakefile")
    for module in ("orchestrate.py", "config.py", "stage.py"):
        shutil.copy(ROOT / "lmforge" / module, dst / "lmforge" / module)
    (dst / "lmforge" / "__init__.py").write_text('"""tiny copy"""\n')
    shutil.copytree(ROOT / "profiles", dst / "profiles", dirs_exist_ok=True)


def clone_project(dest: Path, edit_params: Callable[[dict], None] | None = None) -> Path:
    """This repository as a fresh clone has it (tracked and unignored files, nothing
    generated), in a new git repo at ``dest``; ``edit_params`` changes params.yaml first."""
    files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    if edit_params:
        params = yaml.safe_load((dest / "params.yaml").read_text())
        edit_params(params)
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git_init(dest)
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dest, check=True)
    return dest


def pipeline_env(repo: Path, **kw: str) -> dict:
    """Environment for the real stages in a copy: its own code first, this venv on PATH, offline."""
    e = env(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
            TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(repo), **kw)
    return e


def make_tiny_repo(path: Path, remote: Path) -> Path:
    path.mkdir(parents=True)
    git_init(path)
    run(["dvc", "init", "-q"], path)
    shutil.copy(ROOT / ".dvc" / "config", path / ".dvc" / "config")
    shutil.copytree(ROOT / ".dvc" / "plots", path / ".dvc" / "plots")
    shutil.copy(ROOT / ".dvcignore", path / ".dvcignore")
    # the documented override of the default remote, kept out of git
    run(["dvc", "remote", "modify", "--local", "localdisk", "url", str(remote)], path)
    copy_orchestration(path)
    (path / "dvc.yaml").write_text(TINY_DVC_YAML)
    (path / "params.yaml").write_text(TINY_PARAMS)
    for rel, text in TINY_SRC.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    (path / ".gitignore").write_text(".snakemake/\n__pycache__/\n")
    git_commit(path, "tiny pipeline")
    return path


def render_offline(page_path: Path, charts: int = 1, selector: str = "canvas.marks, svg.marks") -> int:
    """Open a page in headless Chromium with the network cut off; ``charts`` charts must draw.

    Returns how many elements match ``selector`` once drawn (default: the views vega-embed
    renders); any request other than file:// or any page error fails."""
    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser_path is None:
        pytest.skip("no chromium (make system-deps installs it)")
    from playwright.sync_api import sync_playwright

    requested, errors = [], []
    args = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, args=args)
        try:
            page = browser.new_page()
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("file:")
                       else (requested.append(r.request.url), r.abort()))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_path.as_uri())
            page.wait_for_function(f"document.querySelectorAll({selector!r}).length >= {charts}", timeout=30_000)
            drawn = page.locator(selector).count()
        finally:
            browser.close()
    assert drawn >= charts and not requested and not errors, (drawn, requested, errors)
    return drawn


def parse_dry_run(text: str) -> dict[str, dict]:
    """Jobs of `snakemake -n -p` output: {rule: {input, output, reason, shell}}."""
    jobs: dict[str, dict] = {}
    cur = None
    for line in text.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m:
            cur = jobs.setdefault(m.group(1), {"input": [], "output": [], "reason": "", "shell": None})
            continue
        if cur is None:
            continue
        m = re.match(r"^    (input|output|reason): (.*)$", line)
        if m:
            key, val = m.groups()
            cur[key] = val if key == "reason" else [v.strip() for v in val.split(",") if v.strip()]
        elif line.startswith("Shell command: "):
            cur["shell"] = line[len("Shell command: "):]
        elif not line.strip():
            cur = None
        elif cur["shell"] is not None:  # a multi-line command goes on until a blank line
            cur["shell"] += "\n" + line
    return jobs


def dot_edges(dot: str, labels_from_ids: bool) -> set[tuple[str, str]]:
    """Edges of a Graphviz digraph (`dvc dag --dot` or `snakemake --dag`)."""
    if labels_from_ids:  # snakemake: 0[label = "all", ...]; 1 -> 0
        names = dict(re.findall(r'^\s*(\d+)\[label = "([^"]+)"', dot, flags=re.M))
        pairs = re.findall(r"^\s*(\d+) -> (\d+)", dot, flags=re.M)
        return {(names[a], names[b]) for a, b in pairs}
    return set(re.findall(r'"([^"]+)" -> "([^"]+)"', dot))


def dvc_view(root: Path) -> dict[str, dict]:
    """DVC's own reading of root/dvc.yaml: {stage: cmd, wdir, deps, outs, persist, params}."""
    from dvc.repo import Repo

    def rel(o) -> str:
        return os.path.relpath(o.fs_path, root)

    out = {}
    with Repo(str(root)) as r:
        for st in r.index.stages:
            if not st.cmd:  # a `dvc add`-tracked .dvc file, not a stage
                continue
            params = [d for d in st.deps if hasattr(d, "params")]
            out[st.name] = dict(
                cmd=st.cmd, wdir=os.path.relpath(st.wdir, root),
                deps=[rel(d) for d in st.deps if not hasattr(d, "params")],
                params=sorted(f"{rel(d)}:{k}" for d in params for k in (d.params or ["*"])),
                outs=[rel(o) for o in st.outs if not o.persist],
                persist=[rel(o) for o in st.outs if o.persist])
    return out


def check_repo(repo: Path) -> None:
    """Snakemake's plan and DAG for `repo` equal dvc.yaml's stages, I/O and edges."""
    from lmforge.orchestrate import rules_from_dvc, with_log

    specs = {s.name: s for s in rules_from_dvc(repo / "dvc.yaml")}
    dvc = dvc_view(repo)

    jobs = parse_dry_run(run(["snakemake", "-n", "-p", "--forceall"], repo).stdout)
    jobs.pop("all", None)
    assert set(jobs) == set(dvc)
    for name, d in dvc.items():
        job, spec = jobs[name], specs[name]
        cmd = " && ".join(d["cmd"]) if isinstance(d["cmd"], list) else d["cmd"]
        cmd = cmd if d["wdir"] == "." else f"cd {d['wdir']} && {cmd}"
        assert job["shell"] == with_log(cmd if spec.stamp is None else spec.shell, spec.log), name
        assert set(job["output"]) == (set(d["outs"]) or {spec.stamp}), name
        assert set(job["input"]) == set(spec.inputs), name
        for dep in d["deps"]:
            assert any(dep == i or dep.startswith(i + "/") or i.startswith(dep + "/") for i in job["input"]), (name, dep)

    sm_edges = dot_edges(run(["snakemake", "--dag", "--forceall"], repo).stdout, labels_from_ids=True)
    sm_edges = {e for e in sm_edges if "all" not in e}
    dvc_edges = dot_edges(run(["dvc", "dag", "--dot"], repo).stdout, labels_from_ids=False)
    # `dvc add`-tracked data shows up in dvc dag as a `.dvc` node: a source, no rule
    dvc_edges = {(a, b) for a, b in dvc_edges if not a.endswith(".dvc")}
    assert sm_edges == dvc_edges
