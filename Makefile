# feedback-proxy: `make run` starts the proxy on the embedded Redis, `make test` runs the checks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: run test lint unit bench example clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed   ## set up and run the proxy on :8080 (admin :8081), embedded Redis
	$(BIN)/feedback-proxy serve $(ARGS)

test: lint unit               ## set up, lint, type-check and run the whole test suite

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check proxy
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(VENV)/.test-installed
	$(BIN)/pytest -q

example: $(VENV)/.test-installed  ## the chat example with the feedback widget, fake model, :8000
	$(BIN)/python -m examples.chat $(EXAMPLE_ARGS)

bench: $(VENV)/.test-installed  ## forwarding benchmark against a local fast upstream
	$(BIN)/python bench/forwarding.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
