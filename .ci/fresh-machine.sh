#!/usr/bin/env bash
# A new user's machine, as `make test` meets it: the distribution's own Python (/usr/bin/python3)
# and an empty HOME (no global git identity, no caches, no pip config of the user's). Runs the
# suite's setup (make setup-dev into a scratch venv) and the tests that depend on the machine
# rather than the code: git commits in scratch repos (dvc exp) and the committed eval items.
# The whole suite already ran in .ci/run; this adds a few minutes, not a second suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d /tmp/lmforge-fresh.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/home"
# pip's download cache is the one .ci/run's setup just filled (a new user downloads once too);
# everything else a set-up user has (HOME's git identity, config, caches) is left out.
machine=("PIP_CACHE_DIR=${PIP_CACHE_DIR:-$HOME/.cache/pip}")
# the machine's own package settings and proxies (find-links, index), kept
while IFS= read -r kv; do [[ $kv == PIP_CACHE_DIR=* ]] || machine+=("$kv"); done < <(env | grep -E '^(PIP_[A-Z_]+|https?_proxy|HTTPS?_PROXY|no_proxy|NO_PROXY)=' || true)
fresh() {  # the machine's environment, less what a set-up user would have
  env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$scratch/home" LANG=C.UTF-8 CI="${CI:-}" "${machine[@]}" "$@"
}
fresh git config --global --list >/dev/null 2>&1 && { echo "fresh-machine: HOME is not empty"; exit 1; }
start=$SECONDS
fresh make setup-dev VENV="$scratch/venv" PYTHON=/usr/bin/python3 DEBS=libmagic1
echo "fresh-machine: setup with $("$scratch/venv/bin/python" --version) in $((SECONDS - start)) s"
fresh "$scratch/venv/bin/python" -m pytest -q -p no:cacheprovider \
  tests/orchestration/test_experiments.py tests/evals/test_evals_build.py tests/core/test_config.py
echo "fresh-machine: done in $((SECONDS - start)) s"
