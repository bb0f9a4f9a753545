# Two commands do all set-up on a fresh clone (both idempotent):
#   make serve   - create .venv if needed, install, start the broker on 127.0.0.1:7878
#   make test    - create .venv if needed, install, run lint, types and every test suite
#   make bench   - wonderq bench (ARGS="--compare beanstalkd,redis" for the peers)
# `make pytest` measures branch coverage of broker/ and the Python client, the
# broker processes the tests start included, and fails below COV_FLOOR percent
# (`make pytest COV= ARGS=tests/engine` runs a part without the floor).
VENV   := .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=
COV_FLOOR ?= 92
COV    ?= --cov=broker --cov=wonderq --cov-branch --cov-report=term:skip-covered \
          --cov-fail-under=$(COV_FLOOR)

.PHONY: serve test lint types pytest debug-pytest node-test slow bench screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/wonderq serve $(ARGS)

test: lint types pytest debug-pytest node-test

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check broker clients/python tests

types: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -m "not slow" --durations=20 $(COV) $(ARGS)

# The tests of the asyncio code (the TCP server, the HTTP API, the clients) again
# in asyncio's debug mode (--asyncio-debug for the tests' loops, PYTHONASYNCIODEBUG=1
# for the brokers and threads they start), on asyncio's own loop, without the load
# tests: a call into a loop from another thread or a coroutine handed to call_soon
# fails here; a coroutine never awaited and an unclosed transport are reported with
# where they were made.
debug-pytest: $(STAMP)
	PYTHONASYNCIODEBUG=1 $(BIN)/pytest --asyncio-debug -m "not slow and not load" -k "not uvloop" \
		-p no:cacheprovider tests/server tests/http tests/clients

node-test: $(STAMP)
	cd clients/node && WONDERQ_BIN=$(abspath $(BIN)/wonderq) npm test

bench: $(STAMP)
	$(BIN)/wonderq bench $(ARGS)

# the README's pictures of the web console (docs/console-*.png), with a minute of real traffic
screenshots: $(STAMP)
	$(BIN)/pytest -m slow -p no:cacheprovider tests/console/browser/test_screenshots.py

slow: $(STAMP)
	$(BIN)/pytest -m slow $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .coverage .coverage.* htmlcov
