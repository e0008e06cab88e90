# Two commands for a fresh machine: `make run` (the app) and `make test` (the suite).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# The CPU wheel on the project's machines; elsewhere `make TORCH_SPEC=torch` takes your platform's build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: run test lint setup demo-model screenshots bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

run: $(VENV)/.installed
	$(PY) main.py

test: $(VENV)/.installed
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/lint-imports

screenshots: $(VENV)/.installed
	QT_QPA_PLATFORM=offscreen $(PY) -m gptviz screenshot --out docs/screenshots

bench: $(VENV)/.installed
	$(PY) -m gptviz bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
