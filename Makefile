# aup-milter — `make run` starts the gateway, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast test-wheel lint bench bench-rules bench-dlp bench-archive bench-auth clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit("aup-milter needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/aup-milter serve

test: $(VENV)/.test-installed
	$(BIN)/python -m pytest

test-fast: $(VENV)/.test-installed
	$(BIN)/python -m pytest -m "not slow"

test-wheel:  # builds the wheel, installs it in a clean venv and runs check and serve from it
	.ci/wheel-test

lint: $(VENV)/.test-installed
	$(BIN)/ruff check milter policies quarantine archive console tests
	$(BIN)/mypy

bench: $(VENV)/.test-installed
	$(BIN)/python -m tests.bench.relay

bench-rules: $(VENV)/.test-installed
	$(BIN)/python -m tests.bench.rules

bench-dlp: $(VENV)/.test-installed
	$(BIN)/python -m tests.bench.dlp

bench-auth: $(VENV)/.test-installed  # the sender checks (DKIM, SPF, DMARC, impersonation) on inbound mail
	$(BIN)/python -m tests.bench.auth

bench-archive: $(VENV)/.test-installed  # a million messages: about an hour and 15 GB under /var/tmp
	$(BIN)/python -m tests.bench.archive

clean:
	rm -rf $(VENV) var .pytest_cache
