# mmakit: set-up, the study's main job, and the tests. `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared
ME5_DIR ?= $(HOME)/.cache/mmakit/models/me5-small
PROFILE ?= quick
NOTEBOOKS ?=
ifneq ($(wildcard $(SHARED)/data),)
export MMAKIT_DATA_DIR ?= $(abspath $(SHARED)/data)
endif

.PHONY: help setup lock deepsparse sparseml model study test test-fast report images

help:
	@echo "make study   set up, build the offline model, run every notebook on the quick profile"
	@echo "make test    set up and run the test suite (smoke profile, 1 thread): what CI runs"
	@echo "make test-fast   unit tests only: no notebooks, no side environments (about 2 minutes)"
	@echo "make setup   the main virtual environment only ($(VENV)), at the versions locked in constraints.txt"
	@echo "make lock    refresh constraints.txt to the newest versions that install (records made before go stale)"
	@echo "make deepsparse   deepsparse's own environment (.venv-deepsparse)"
	@echo "make sparseml     sparseml's own environment (.venv-sparseml), for the OBS cross-check"
	@echo "make report  render the executed notebooks (outputs/notebooks) to HTML in outputs/html"
	@echo "make images  install Chromium (root, apt) so figures are also written as PNG"
	@echo "python -m mmakit run --list   the study's papermill commands, and which are current"
	@echo "variables: PROFILE=$(PROFILE) NOTEBOOKS='03 05' MMAKIT_DATA_DIR=$(MMAKIT_DATA_DIR)"

TORCH := $(shell sed -n 's/^torch==//p' constraints.txt)
EXTRAS := .[notebooks,test,images]

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==$(TORCH)   # first: the CPU wheel, before anything can pull a CUDA build
	$(PY) -m pip install -q -c constraints.txt -e "$(EXTRAS)"
	touch $@

setup: $(VENV)/.installed

# A fresh environment at the newest versions pyproject.toml allows, frozen into constraints.txt.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q torch==$(TORCH)
	.venv-lock/bin/python -m pip install -q -e "$(EXTRAS)"
	{ sed -n '1,/^# ---/p' constraints.txt; .venv-lock/bin/python -m pip freeze --exclude-editable \
		| sed 's/+cpu$$//'; } > constraints.txt.new && mv constraints.txt.new constraints.txt
	rm -rf .venv-lock

deepsparse: setup
	-$(PY) -m mmakit setup-deepsparse   # optional: without it, speed tables show onnxruntime only

sparseml: setup
	-$(PY) -m mmakit setup-sparseml   # optional: without it, the SparseML cross-check of OBS is skipped

$(ME5_DIR)/model.safetensors: | setup
	PYTHON=$(PY) $(SHARED)/tools/get-me5-small $(ME5_DIR)

model: $(ME5_DIR)/model.safetensors

study: setup deepsparse model
	$(PY) -m mmakit run --profile $(PROFILE) $(NOTEBOOKS)
	$(PY) -m mmakit report

report: setup
	$(PY) -m mmakit report

images:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && apt-get install -y -q chromium; \
	else echo "make images needs root and apt-get (Debian's chromium package); HTML figures need nothing"; fi

test: setup deepsparse sparseml
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not notebook and not deepsparse and not sparseml"
