#!/usr/bin/env bash
# Python 3.12 (Ubuntu 24.04's): the locked set installs, and the fast, torch-free tier passes.
# torch is left out here: PyPI's Linux wheel of the pinned version is the CUDA build (about 3 GB
# with its nvidia-* libraries) and only the 3.11 CPU wheel lies on this machine, so torch gets a
# resolution check (pip --dry-run, metadata only) instead of an install. Everything else in
# requirements-dev.lock is installed for real, with its hashes. Set PYTHON312 to pick the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
py=""   # the first 3.12 that runs (a pyenv shim on PATH may name one it will not run)
for c in ${PYTHON312:-} /usr/bin/python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 python3.12; do
  if "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then py=$c; break; fi
done
[ -n "$py" ] || { echo "python312: no Python 3.12 found (set PYTHON312)"; exit 1; }
scratch=$(mktemp -d /tmp/lmforge-py312.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
start=$SECONDS
"$py" -m venv "$scratch/venv"
pip=("$scratch/venv/bin/pip" install -q --disable-pip-version-check)
"${pip[@]}" --upgrade pip
# the lock less torch's block (a pin line and its hash lines), installed as make setup does
awk '/^torch==/{skip=1; next} skip && /^    --hash/{next} {skip=0; print}' requirements-dev.lock > "$scratch/no-torch.lock"
"${pip[@]}" --require-hashes --no-deps -r "$scratch/no-torch.lock"
"${pip[@]}" --no-deps -e .
"${pip[@]}" --dry-run --no-deps "$(grep -o '^torch==[^ ]*' requirements-dev.lock)"
"$scratch/venv/bin/python" -m pip check 2>&1 | grep -v -i "torch\|nvidia\|triton" | grep -i "requires\|has requirement" && exit 1
echo "python312: $("$scratch/venv/bin/python" --version) installed in $((SECONDS - start)) s"
"$scratch/venv/bin/python" -m lmforge.check
"$scratch/venv/bin/python" -m pytest -q -p no:cacheprovider tests/core/test_config.py tests/core/test_imports.py \
  tests/core/test_codedeps.py tests/orchestration/test_translation.py tests/feedback/test_store.py
echo "python312: done in $((SECONDS - start)) s"
