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

# Readable log lines for a person at the terminal (production's default is JSON lines), and SMS
# written whole to .guichet/sms.jsonl, where the web phone (/console/phone) reads them.
run: install
	mkdir -p .guichet && GUICHET_LOG_FORMAT=$${GUICHET_LOG_FORMAT:-console} \
	GUICHET_SMS_PROVIDER=$${GUICHET_SMS_PROVIDER:-file} GUICHET_SMS_FILE=$${GUICHET_SMS_FILE:-.guichet/sms.jsonl} \
	$(BIN)/guichet serve

test: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
