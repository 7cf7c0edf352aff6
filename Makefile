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

# JupyterLab on the repository (kernels start in notebooks/; each notebook moves to the repo root).
LAB_PORT ?= 8888
lab: setup
	@token=$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(16))'); \
	echo "JupyterLab: http://127.0.0.1:$(LAB_PORT)/lab/tree/notebooks?token=$$token"; \
	exec $(BIN)/jupyter lab --no-browser --ip=127.0.0.1 --port=$(LAB_PORT) \
		--ServerApp.root_dir=. --IdentityProvider.token=$$token \
		$(if $(filter 0,$(shell id -u)),--allow-root)
