# One check command, run by CI too (scripts/test calls `make check`).
PY ?= .venv/bin/python
SRC = gitswarm harness tests $(wildcard bench)

.PHONY: check lint format-check typecheck contracts test bench fmt

check: lint format-check typecheck contracts

lint:
	$(PY) -m ruff check $(SRC)

format-check:
	$(PY) -m ruff format --check $(SRC)

fmt:
	$(PY) -m ruff format $(SRC)
	$(PY) -m ruff check --fix $(SRC)

typecheck:
	$(PY) -m mypy

contracts:
	.venv/bin/lint-imports

test:
	./scripts/test

# make bench ARGS="--quick" / ARGS="latency --runs 9": see bench/README.md
bench:
	$(PY) -m bench $(ARGS)
