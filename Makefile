# smsflow: `make demo` and `make test` are the two commands of the quick start.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SMSFLOW := $(VENV)/bin/smsflow
STAMP := $(VENV)/.installed-stamp
TEST_KAFKA_PORT ?= 39092
TEST_STATE := .smsflow/test
PYTEST_ARGS ?=

.PHONY: install demo test test-unit lint format bench schemas clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -c constraints.txt -e ".[test,dev,rocksdb]"
	@touch $(STAMP)

install: $(STAMP)

## The local stack end to end: broker, topics, services, examples, a status table.
demo: install
	@$(PY) -m services.control.demo

## The whole suite (unit, integration, e2e) against a real broker started for the run.
test: install
	@$(SMSFLOW) kafka start --port $(TEST_KAFKA_PORT) --state-dir $(TEST_STATE)
	@SMSFLOW_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$(TEST_KAFKA_PORT) $(PY) -m pytest $(PYTEST_ARGS); \
	  rc=$$?; $(SMSFLOW) kafka stop --state-dir $(TEST_STATE) --purge; exit $$rc

test-unit: install
	@$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: install
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy schemas

format: install
	@$(VENV)/bin/ruff format .
	@$(VENV)/bin/ruff check --fix .

## Throughput and memory figures, each beside a raw-Kafka baseline from the same run.
bench: install
	@$(SMSFLOW) kafka start --port $(TEST_KAFKA_PORT) --state-dir $(TEST_STATE)
	@SMSFLOW_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$(TEST_KAFKA_PORT) $(PY) -m bench; \
	  rc=$$?; $(SMSFLOW) kafka stop --state-dir $(TEST_STATE) --purge; exit $$rc

schemas: install
	@$(PY) -m schemas.generate

clean:
	@-$(SMSFLOW) dev down --purge 2>/dev/null
	rm -rf .smsflow .pytest_cache .mypy_cache .ruff_cache
