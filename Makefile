# Two commands on a fresh Debian machine:
#   make demo   set up, install the models, fetch the sample video, analyse it
#   make test   set up, install the models, run the whole test suite
#   make test-clock-ahead   the same with the clock a year ahead (faketime): no test
#               may depend on the day it runs
# yuface, the face detector, has wheels for CPython 3.11 only (Debian 12's python3).
PYTHON ?= $(shell command -v python3.11 || echo python3)
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-clock-ahead test-lfw setup system-deps test-deps models lint bench clean

system-deps:
	@sh scripts/system-deps.sh

test-deps:
	@sh scripts/system-deps.sh --tests

$(BIN)/safecity: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
	    { echo "safecity needs Python 3.11 (yuface has no wheel for $$($(PYTHON) -V)); set PYTHON=" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

setup: system-deps $(BIN)/safecity

models: setup
	$(BIN)/safecity models install

demo: models
	$(BIN)/safecity demo

test: models test-deps
	$(BIN)/python -m pytest

# The LFW tests that embed all 4,992 dev images (about 30 min on 2 cores the first
# time; the vectors are kept in ~/.cache/safecity/lfw-emb for later runs).
test-lfw: models test-deps
	SAFECITY_LFW_CACHE=$(HOME)/.cache/safecity/lfw-emb $(BIN)/python -m pytest -p no:cacheprovider \
		tests/identity/test_lfw.py tests/identity/test_fusion.py

test-clock-ahead: models test-deps
	faketime -f '+365d' $(BIN)/python -m pytest -p no:cacheprovider

lint: setup
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

bench: models
	$(BIN)/safecity bench components

clean:
	rm -rf $(VENV) demo-out
