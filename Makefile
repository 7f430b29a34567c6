# Every target bootstraps first, so each works on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= .demo
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: bootstrap lint unit test test-long demo demo-down bench

bootstrap:
	@scripts/bootstrap.sh

lint: bootstrap
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy kube lb ccm csi e2e tests scripts

unit: bootstrap
	$(PY) -m pytest -m "not integration"

# The README's test command: lint, unit and integration tests on the real harness.
test: lint
	$(PY) -m pytest

# The full-size reliability load run (1000 Services, 200 volumes), left out of `make test`.
test-long: bootstrap
	$(PY) -m pytest -m long

# `make demo DEMO_ARGS=--keep` leaves it running.
demo: bootstrap
	$(PY) -m e2e.demo --dir $(DEMO_DIR) $(DEMO_ARGS)

demo-down: bootstrap
	$(PY) -m e2e.cluster down --dir $(DEMO_DIR)

# Runs every benchmark on one harness and rewrites docs/benchmarks.md.
bench: bootstrap
	$(PY) -m e2e.bench
