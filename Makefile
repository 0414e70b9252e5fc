# make demo  - the main job (sets itself up first)
# make test  - the whole test suite (sets itself up first)
# make setup - .venv with the pinned stack (constraints.txt) and glassnet, editable, with the
#              test and export extras

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.glassnet-installed

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[test,export]'
	touch $(STAMP)

demo: setup
	$(BIN)/glassnet reproduce --quick --out runs/demo-$$(date -u +%Y%m%dT%H%M%SZ)

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
