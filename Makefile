# Two commands for a newcomer: `make demo` and `make test`. Each installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Extra pytest arguments, e.g. PYTEST_ARGS="--randomly-seed=1234" to replay an order.
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck bench mutation install clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

.data/.system-deps: scripts/install-system-deps.sh
	scripts/install-system-deps.sh
	mkdir -p .data && touch $@

install: $(BIN)/.installed node_modules/.installed

## Start the sandbox (Azurite, broker, Entra and PSC simulators, demo service); Ctrl-C stops it.
demo: install
	$(BIN)/python -m sandbox

## Lint, then run the whole test suite (unit, integration on Azurite, end-to-end over HTTPS, browser, infra)
## in a random order (pytest-randomly; the seed is printed at the top).
test: install .data/.system-deps
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -p randomly $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

## Print the performance figures (cold-start import time, storage round trips per sign-in, latency).
bench: install
	$(BIN)/python -m bench

## Mutation testing of the trust code (mutmut over the unit tests; docs/mutation.md): a fresh run, then the
## score per module. MUTANTS="sanscouture.oidc.pkce.*" restricts it to one module. Not part of make test.
MUTANTS ?=
mutation: install
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-mutation.txt
	rm -rf mutants
	nice -n 10 $(BIN)/mutmut run $(MUTANTS)
	$(BIN)/python -m tools.mutation_score

clean:
	rm -rf mutants $(VENV) node_modules .data .pytest_cache .ruff_cache .mypy_cache
