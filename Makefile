# The two commands of the README: `make run` and `make test`. Both build the environment first;
# only `make test` adds what the tests alone need (Debian's Chromium for the UI tests).
VENV ?= .venv
export HF_HUB_OFFLINE = 1

.PHONY: setup setup-test run test lint ui

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	@VENV=$(VENV) bash scripts/setup.sh

setup-test: setup
	@bash scripts/setup-test.sh

run: setup
	@FOUNDRY_EVAL_DIR="$${FOUNDRY_EVAL_DIR-$(CURDIR)/data/evals}" $(VENV)/bin/foundry run

test: setup-test
	$(VENV)/bin/python -m pytest

lint: setup
	$(VENV)/bin/ruff format --check . && $(VENV)/bin/ruff check .

ui: setup
	@$(VENV)/bin/foundry ui
