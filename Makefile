# `make run` and `make test` each create .venv themselves on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest-xdist workers for the parallel part of `make test` (0 = one process)
JOBS ?= 3

.PHONY: install lock run test lint typecheck bench clean sample-pir

# Dependencies come from the lock file only, each checked against its hash; the project itself adds none
# (--no-deps), so an upstream release cannot change what gets installed. `make lock` refreshes the lock.
$(STAMP): pyproject.toml requirements-dev.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

lock: install
	$(BIN)/python -m pip install -q uv
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^uv==' > .lock-constraints.txt
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 -q -c .lock-constraints.txt -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -q -c .lock-constraints.txt -o requirements-dev.lock
	rm -f .lock-constraints.txt

run: install
	$(BIN)/incident-bot sandbox $(ARGS)

lint: install
	$(BIN)/ruff check bot handlers wiring sandbox migrations tests bench scripts
	$(BIN)/ruff format --check bot handlers wiring sandbox migrations tests bench scripts
	$(BIN)/mypy bot handlers wiring sandbox
	$(BIN)/lint-imports

test: install
	bash scripts/ensure-chromium.sh || true
	bash scripts/ensure-alertmanager.sh || true
	$(MAKE) --no-print-directory lint
	PY=$(BIN)/python JOBS=$(JOBS) bash scripts/run-tests.sh $(PYTEST_ARGS)

sample-pir: install
	$(BIN)/python scripts/sample_pir.py

bench: install
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
