# One entry point for people and CI. Every target sets up what it needs.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config.example.yaml
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench install clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/paybridge serve -c $(CONFIG)

# The runner finds PostgreSQL (PAYBRIDGE_TEST_POSTGRES_URL, else the default local server if
# it answers), says whether its tests run, and without it scopes the coverage gate to the rest.
test: $(STAMP)
	$(BIN)/python -m tests.pytest_with_postgres -q --cov=bridge --cov=adapters --cov-branch \
		--cov-report=term:skip-covered --cov-fail-under=90 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check bridge adapters tests examples bench
	$(BIN)/ruff format --check bridge adapters tests examples bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
