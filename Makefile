# The single entry point: CI (.ci/run), the README's quick start and developers all come here.
# `make test` and `make demo` work from a fresh clone with only Python 3.11 and make: they build
# .venv themselves, pinned by requirements-lock.txt.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-9s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements-lock.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "ingest needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements-lock.txt -e '.[dev]'
	touch $(STAMP)

.PHONY: install
install: $(STAMP) ## create .venv and install ingest with its dev tools

.PHONY: test
test: install ## run the whole test suite (unit, component, end-to-end)
	$(BIN)/pytest -q

.PHONY: lint
lint: install ## ruff (lint + format check), mypy --strict, and the import contracts
	$(BIN)/ruff check pipeline tests migrations
	$(BIN)/ruff format --check pipeline tests migrations
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

.PHONY: format
format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix pipeline tests migrations
	$(BIN)/ruff format pipeline tests migrations

.PHONY: demo
demo: install ## generate a sample catalogue and ingest it into the local sandbox
	$(BIN)/python -m pipeline.sandbox.demo

.PHONY: bench
bench: install ## ingest beside curl, bare aiohttp, rclone, find (BENCH_QUICK=1: fast pass)
	$(BIN)/python -m tests.bench

.PHONY: lock
lock: install ## refresh requirements-lock.txt from the current .venv
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^ingest' > requirements-lock.txt

.PHONY: clean
clean: ## remove .venv, caches and demo output
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .demo
