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

.PHONY: setup system-deps repro test bench

system-deps:
	@missing=""; for p in $(DEBS); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi

$(VENV)/.installed: pyproject.toml
	python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

setup: system-deps $(VENV)/.installed

repro: setup
	dvc repro

test: DEBS = $(RUN_DEBS) $(TEST_DEBS)
test: setup
	pytest -q

bench: setup
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done
