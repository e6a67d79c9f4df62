# Two entry points: `make demo` (set up, then run the example DAGs against the local Graph emulator) and
# `make test` (set up, then run lint and the whole test suite). Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint unit docs bench clean deploy

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,ui,deploy]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/airflow-onedrive demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy airflow_provider_onedrive

test: lint
	bash .ci/browser
	bash .ci/services
	$(BIN)/pytest tests

unit: setup
	$(BIN)/pytest tests/unit

# a real deployment (PostgreSQL, Redis, scheduler, dag-processor, triggerer, api-server, two Celery workers)
# with the example DAGs, for a person to look at; Ctrl-C stops it
deploy: setup
	bash .ci/services
	$(BIN)/python -m tests.deployment.cluster

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache artifacts
