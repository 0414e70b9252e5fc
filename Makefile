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

# One pytest worker per core (pytest-xdist), each process and the CLI runs it starts on one
# torch thread: two 2-thread processes on two cores thrash; two 1-thread ones do not.
test: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n auto

lint: setup
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
