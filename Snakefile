# Snakemake view of dvc.yaml: the same stages, commands, inputs and outputs.
#
# dvc.yaml is the single source of truth; this file only loops over the rules
# that lmforge/orchestrate.py derives from it (no stage command is repeated here).
# Resources (threads, mem_mb, runtime, gpu, slurm_partition ...) come from each
# stage's `meta: {resources: {...}}` block (GPU counts from params.yaml `resources:`). Run on a cluster with
#   snakemake --workflow-profile profiles/slurm
# and locally with `snakemake --workflow-profile profiles/local`. After a
# successful run, `dvc commit --force <stages>` records the outputs in dvc.lock (set
# `--config dvc_commit=false` to skip it), so `dvc status` agrees with Snakemake.
# Each rule's output also goes to logs/<stage>.log, kept on success; a stage marked
# `meta: {retries: 0}` in dvc.yaml (a data check or quality gate) is never retried.
import os
import shutil
import subprocess
import sys

from snakemake.utils import min_version

min_version("9.0")   # --cluster is gone since 8: profiles/README.md

sys.path.insert(0, workflow.basedir)
from lmforge.orchestrate import dvc_commit_command, rules_from_dvc

workdir: workflow.basedir

STAGES = rules_from_dvc(f"{workflow.basedir}/dvc.yaml")

localrules: all


rule all:
    default_target: True
    input: [o for s in STAGES for o in s.outputs]


for _s in STAGES:

    rule:
        name: _s.name
        input: list(_s.inputs)
        output: [directory(o) if o in _s.output_dirs else o for o in _s.outputs]
        params: cmd=_s.logged_shell, dvc_params=_s.params_json
        threads: _s.threads
        resources: **_s.submit_resources
        retries: _s.retries
        log: _s.log
        shell: "{params.cmd}"


onstart:
    # The whole params.yaml before any job runs (lmforge check); the orchestration tests'
    # tiny copies carry no check module and their own params.
    if os.path.exists(os.path.join(workflow.basedir, "lmforge", "check.py")):
        subprocess.run([sys.executable, "-m", "lmforge.check"], check=True, cwd=workflow.basedir)


onsuccess:
    # Record what this run built in dvc.lock (only the stages in this run's DAG).
    if str(config.get("dvc_commit", True)).lower() not in ("false", "0", "no"):
        ran = sorted({j.rule.name for j in workflow.dag.jobs} & {s.name for s in STAGES})
        dvc = shutil.which("dvc") or os.path.join(os.path.dirname(sys.executable), "dvc")
        if ran:
            subprocess.run(dvc_commit_command(ran, dvc), check=True, cwd=workflow.basedir)
