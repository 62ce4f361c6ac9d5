# Two commands set everything up on a fresh clone:
#   make test   - venv, dependencies, ruff, pytest (fast and slow tests)
#   make demo   - the end-to-end demo pipeline on procedural characters (CPU)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYOPENGL_PLATFORM ?= egl

.PHONY: test demo lint bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check conrdata conrmodel tests benchmarks pipelines

test: lint
	$(BIN)/python -m pytest -q -rs

demo: $(STAMP)
	$(BIN)/python -m pipelines.demo $(DEMO_ARGS)

bench: $(STAMP)
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) demo-out .pytest_cache .ruff_cache
