# `make run` and `make test` each create .venv themselves on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck bench clean sample-pir

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/incident-bot sandbox $(ARGS)

lint: install
	$(BIN)/ruff check bot handlers wiring sandbox migrations tests bench scripts
	$(BIN)/ruff format --check bot handlers wiring sandbox migrations tests bench scripts
	$(BIN)/mypy bot handlers wiring sandbox
	$(BIN)/lint-imports

test: install
	bash scripts/ensure-chromium.sh || true
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

sample-pir: install
	$(BIN)/python scripts/sample_pir.py

bench: install
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
