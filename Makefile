# The two commands of the README: `make run` and `make test`. Both build .venv from
# requirements-dev.lock (made from setup.cfg by `make lock`), so CI tests exactly what is pinned.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pip-tools lives in a venv of its own: the test venv holds the dev lock and nothing else.
LOCK_VENV ?= .venv-lock
PIP_TOOLS ?= pip-tools>=7.5,<8
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes \
	--strip-extras --no-emit-index-url --no-emit-find-links $(LOCK_FLAGS)

.PHONY: install run test test-unit bench openapi definitions manifests lock clean

# Every file checked against the lock's hashes, then the project itself, whose dependencies are all there.
$(STAMP): setup.cfg pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# The lock files from setup.cfg, for Python 3.11: requirements.lock (what the image runs),
# requirements-dev.lock (that plus the test and sandbox extras, held to the same pins) and
# requirements-sandbox.lock (the image's sandbox target: that plus the sandbox extra). Existing pins
# are kept; `make lock LOCK_FLAGS=--upgrade` takes the newest releases the ranges allow.
lock:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip '$(PIP_TOOLS)'
	$(PIP_COMPILE) -o requirements.lock setup.cfg
	$(PIP_COMPILE) --extra test --extra sandbox -c requirements.lock -o requirements-dev.lock setup.cfg
	$(PIP_COMPILE) --extra sandbox -c requirements.lock -o requirements-sandbox.lock setup.cfg

# `make run` is for a laptop: `erp-sync dev` makes the secrets nobody set (kept in .erp-sync.env), and prints them.
run: $(STAMP)
	$(BIN)/erp-sync dev

# All three tiers of tests/ (unit, integration, e2e); the last two need PostgreSQL and RabbitMQ.
# Two pytest processes (pytest-xdist), each with a database and a vhost of its own: the suite
# waits on processes and services about as long as it computes.
TEST_PROCESSES ?= 2
test: $(STAMP)
	$(BIN)/python -m mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest --numprocesses $(TEST_PROCESSES)

# The unit tier alone: no service needed, seconds; in as many processes as `make test`.
test-unit: $(STAMP)
	$(BIN)/python -m pytest --numprocesses $(TEST_PROCESSES) tests/unit

bench: $(STAMP)
	$(BIN)/python -m bench.ingress

# Rewrite the published OpenAPI documents (docs/openapi/) from the code; a unit test fails when they differ.
openapi: $(STAMP)
	$(BIN)/python -m erp_sync.ingress.openapi .

# Rewrite deploy/rabbitmq/definitions.json: what `erp-sync migrate` declares with the default settings
# (env -i: none of this shell's); a unit test fails when they differ.
definitions: $(STAMP)
	env -i $(BIN)/erp-sync migrate --definitions > deploy/rabbitmq/definitions.json

# Rewrite deploy/k8s/base/workers.yaml (a Deployment and a KEDA ScaledObject per worker of the
# registry); a unit test fails when it differs.
manifests: $(STAMP)
	$(BIN)/python deploy/k8s/generate.py

clean:
	rm -rf $(VENV) $(LOCK_VENV) *.egg-info .pytest_cache .hypothesis
