# The two commands of the README: `make run` and `make test`. Both build the environment first.
VENV ?= .venv
export HF_HUB_OFFLINE = 1

.PHONY: setup run test lint ui

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh

run: setup
	$(VENV)/bin/foundry run

test: setup
	$(VENV)/bin/python -m pytest

lint: setup
	$(VENV)/bin/ruff format --check . && $(VENV)/bin/ruff check .

ui: setup
	$(VENV)/bin/foundry ui
