# Two commands do all set-up on a fresh clone (both idempotent):
#   make serve   - create .venv if needed, install, start the broker on 127.0.0.1:7878
#   make test    - create .venv if needed, install, run lint, types and every test suite
#   make bench   - wonderq bench (ARGS="--compare beanstalkd,redis" for the peers)
VENV   := .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=

.PHONY: serve test lint types pytest node-test slow bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/wonderq serve $(ARGS)

test: lint types pytest node-test

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check broker clients/python tests

types: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -m "not slow" $(ARGS)

node-test: $(STAMP)
	cd clients/node && WONDERQ_BIN=$(abspath $(BIN)/wonderq) npm test

bench: $(STAMP)
	$(BIN)/wonderq bench $(ARGS)

slow: $(STAMP)
	$(BIN)/pytest -m slow $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
