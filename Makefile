PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Nothing may download model weights or data at run time.
export HF_HUB_OFFLINE := 1

.PHONY: install demo test lint typecheck bench clean

install: $(VENV)/.installed

# constraints.txt pins torch==2.13.0: the CPU build that lies on this disk (any other pulls CUDA).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[service,dev,distributed]"
	touch $@

demo: install
	$(BIN)/shelfwise demo

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports --no-cache

typecheck: install
	$(BIN)/mypy

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/accuracy.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
