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
	$(VENV)/bin/mypy

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/lint-imports && $(VENV)/bin/mypy

screenshots: $(VENV)/.installed
	QT_QPA_PLATFORM=offscreen $(PY) -m gptviz screenshot --out docs/screenshots

bench: $(VENV)/.installed
	$(PY) -m gptviz bench

# The bundled demo model: trained by this repo's own `gptviz train` on the built-in corpus, then only the
# weights (fp16), config, metrics and probes are kept (the optimizer state would be 90 MB).
DEMO_TRAIN_ARGS = --corpus builtin --preset tiny --steps 600 --batch-size 8 --lr 2e-3 --warmup 50 --cosine \
	--eval-freq 50 --eval-iter 5 --seed 123 --save-dtype float16
demo-model: $(VENV)/.installed
	rm -rf runs/demo
	$(VENV)/bin/gptviz train $(DEMO_TRAIN_ARGS) --out runs/demo
	rm -rf resources/demo-model && mkdir -p resources/demo-model
	cp runs/demo/checkpoint/model.safetensors runs/demo/checkpoint/config.json resources/demo-model/
	cp runs/demo/metrics.jsonl runs/demo/settings.json resources/demo-model/
	cp -r runs/demo/probes resources/demo-model/probes

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
