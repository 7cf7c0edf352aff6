# Two commands on a fresh machine: `make study` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PARAMS  ?= params/default.yaml

.PHONY: setup study quick test lint lab clean-smoke

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel

# Re-install only when the dependency list changed; otherwise setup is a no-op.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

setup: $(STAMP)

study: setup
	$(BIN)/python -m afss_utils.run --params $(PARAMS) --out results
	$(BIN)/python -m afss_utils.tables --embed README.md --tables results/tables

quick: setup
	$(BIN)/python -m afss_utils.run --params params/quick.yaml --out out/quick

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check afss_utils tests benchmarks notebooks
	$(BIN)/ruff format --check afss_utils tests benchmarks

lab: setup
	$(BIN)/jupyter lab notebooks
