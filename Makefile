# The two commands of the README: `make run` and `make test`. Both build .venv from setup.cfg.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-unit bench openapi clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,sandbox]'
	touch $(STAMP)

install: $(STAMP)

# `make run` is for a laptop: a local-only secret unless ERP_WEBHOOK_SECRET is already set.
run: export ERP_WEBHOOK_SECRET ?= local-development-webhook-secret
run: $(STAMP)
	$(BIN)/erp-sync dev

# All three tiers of tests/ (unit, integration, e2e); the last two need PostgreSQL and RabbitMQ.
test: $(STAMP)
	$(BIN)/python -m mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

# The unit tier alone: no service needed, seconds.
test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

bench: $(STAMP)
	$(BIN)/python -m bench.ingress

# Rewrite the published OpenAPI documents (docs/openapi/) from the code; a unit test fails when they differ.
openapi: $(STAMP)
	$(BIN)/python -m erp_sync.ingress.openapi .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
