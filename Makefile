# TaskTrackerPro: `make run` serves it, `make test` checks it. Everything installs into .venv,
# pinned by constraints.txt.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-postgres test-embedded test-conformance lint format typecheck check clean bench

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found %s)" % sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

## Serve on http://$${HOST:-127.0.0.1}:$${PORT:-5000} (embedded SQLite unless DATABASE_URL/REDIS_URL).
run: install
	$(BIN)/tasktracker run

## The whole suite: PostgreSQL + Redis + a real Celery worker, then the embedded mode, then
## the black-box stages against a live server.
test: install test-postgres test-embedded test-conformance

test-postgres: install
	$(BIN)/python -m pytest

test-embedded: install
	TASKTRACKER_TEST_BACKEND=embedded $(BIN)/python -m pytest -m "not postgres_only and not worker"

## A live server (gunicorn on PostgreSQL + Redis with a worker, then embedded): schemathesis over
## /openapi.json for each role, the Postman collection (docs/postman) by newman, and Swagger UI
## in headless Chromium. Reports and build/swagger-ui.png are kept under build/.
test-conformance: install node_modules/.package-lock.json
	$(BIN)/python -m pytest tests/conformance

node_modules/.package-lock.json: package.json package-lock.json
	@if command -v npm >/dev/null; then npm ci --no-audit --no-fund; else \
	  echo "!!! npm is missing: the Postman (newman) stage cannot run. Install Node.js and npm" \
	  "(apt-get install -y nodejs npm), then run make again."; fi

## Benchmarks of SPEC section 10 against PostgreSQL and Redis on localhost (about ten minutes on
## 2 cores): each figure beside its limit, written to docs/benchmarks.md and docs/benchmarks/.
BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

bench: install $(BENCH_STAMP)
	@command -v wrk >/dev/null || { echo "wrk is missing; installing it"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; }
	$(BIN)/python -m bench.run --no-report
	@if [ -f bench/import_bench.py ]; then $(BIN)/python -m bench.import_bench; fi
	$(BIN)/python -m bench.report

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) build node_modules .pytest_cache .mypy_cache .ruff_cache
