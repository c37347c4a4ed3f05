# Two commands: `make run` serves Guichet, `make test` tests it. Both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Readable log lines for a person at the terminal (production's default is JSON lines).
run: install
	GUICHET_LOG_FORMAT=$${GUICHET_LOG_FORMAT:-console} $(BIN)/guichet serve

test: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
