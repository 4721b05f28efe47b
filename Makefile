# orchlog developer entry points. Every target bootstraps .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
DB ?= ./orchlog.db

.PHONY: run test test-fast test-long lint bench demo fmt clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q --upgrade pip
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

## run: serve on http://$(HOST):$(PORT) backed by $(DB) (SQLite, WAL)
run: $(STAMP)
	$(BIN)/orchlog serve --db $(DB) --host $(HOST) --port $(PORT)

## test: every layer: unit + api (in-process app) + e2e (real servers; PostgreSQL half when ORCHLOG_TEST_PG_URL is set).
## Two passes: everything but the `serial` tests on $(TEST_WORKERS) pytest-xdist workers (whole files per worker, so a
## module's shared server stays one server; e2e mostly waits on subprocesses, so 3 workers overlap well on 2 cores),
## then the `serial` ones (CPU-heavy or timing-bound) alone. Both passes always run; it fails if either failed.
TEST_WORKERS ?= 3
test: $(STAMP)
	status=0; \
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m 'not long and not serial' tests || status=$$?; \
	$(BIN)/python -m pytest -q -p no:xdist -m 'serial and not long' tests || status=$$?; \
	exit $$status

## test-fast: the edit loop: unit + api only (no subprocesses, under a minute)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit tests/api

## test-long: the fault-injection and soak runs kept out of `make test`
test-long: $(STAMP)
	$(BIN)/python -m pytest -q -m long

## lint: ruff and mypy (strict on backend/)
lint: $(STAMP)
	$(BIN)/ruff check backend tests
	$(BIN)/ruff format --check backend tests
	$(BIN)/mypy

## demo: a simulated agent fleet posting to the server (starts one if none runs)
demo: $(STAMP)
	$(BIN)/orchlog demo --url http://$(HOST):$(PORT)

## bench: the standard benchmark set (about 10 minutes); writes bench-results.{json,md,png}
bench: $(STAMP)
	$(BIN)/python -m pip install --disable-pip-version-check -q 'matplotlib>=3.8' || echo 'no matplotlib: skipping the chart'
	$(BIN)/orchlog bench

fmt: $(STAMP)
	$(BIN)/ruff format backend tests
	$(BIN)/ruff check --fix backend tests

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache
