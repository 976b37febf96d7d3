# Two commands do all the set-up: `make run` and `make test` (see README.md).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=/path/to/python3.11'"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/salescast stream --days 90 --reset
	$(BIN)/salescast lake
	$(BIN)/salescast crawl
	$(BIN)/salescast query top_products

test: $(STAMP)
	$(BIN)/ruff check helpers tests benchmarks
	$(BIN)/ruff format --check helpers tests benchmarks
	$(BIN)/cfn-lint cloudformation/stack.yaml
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks.pipeline

clean:
	rm -rf $(VENV) data/local
