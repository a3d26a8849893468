# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN_STAMP  := $(VENV)/.run-installed
DEV_STAMP  := $(VENV)/.dev-installed
HOST ?= 127.0.0.1
PORT ?= 8000
# Console logs for a person (make run); the service's default is JSON lines.
LOG_FORMAT ?= text

.PHONY: run test lint format bench chaos clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(RUN_STAMP)

# make run is the local demo: a pretend receiver (the sandbox) on this machine, so deliveries to
# loopback are allowed.  Never set these two in production.
DEMO_ENV := INVOICE_OUTBOX_SANDBOX=true INVOICE_OUTBOX_ALLOW_PRIVATE_TARGETS=true

## run: install, migrate, load demo data on first start, serve on http://$(HOST):$(PORT)
##      (another port: make run PORT=8080)
run: $(RUN_STAMP)
	$(BIN)/invoice-outbox migrate
	$(DEMO_ENV) $(BIN)/invoice-outbox demo --if-empty --sandbox-url http://$(HOST):$(PORT)/sandbox
	$(DEMO_ENV) INVOICE_OUTBOX_LOG_FORMAT=$(LOG_FORMAT) $(BIN)/invoice-outbox serve --host $(HOST) --port $(PORT)

## lint: ruff (lint + format check) and mypy
lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## test: lint, then the whole suite (PostgreSQL tests run when CI=true, else skip if unreachable)
test: lint
	$(BIN)/pytest

## chaos: the fault runs of issue #10 at full size (10k invoices and 30 kills, two PostgreSQL
## restarts, several hosts with a cut link; PostgreSQL, root for the namespaces); prints the figures
chaos: $(DEV_STAMP)
	FAULTS_SCALE=chaos $(BIN)/pytest -p no:cacheprovider -m faults tests/faults

format: $(DEV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: reproducible measurements against named baselines (needs PostgreSQL)
bench: $(DEV_STAMP)
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.admin
	$(BIN)/python -m benchmarks.delivery
	$(BIN)/python -m benchmarks.encryption
	$(BIN)/python -m benchmarks.intake
	$(BIN)/python -m benchmarks.lanes

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
