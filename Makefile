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
DEMO_ARGS ?=

.PHONY: install browser demo test test-unit lint format bench schemas clean
CHROMIUM ?= /usr/bin/chromium

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -c constraints.txt -e ".[test,dev,rocksdb]"
	@touch $(STAMP)

install: $(STAMP)

## The local stack end to end: broker, topics, services, examples, a status table.
## `make demo DEMO_ARGS=--keep` leaves the stack up and ends with the dashboard's address.
demo: install
	@$(PY) -m services.control.demo $(DEMO_ARGS)

## Headless Chromium for the dashboard's browser test: Debian's package (Playwright drives
## it by path; no browser download). Uses sudo only when not root.
browser:
	@test -x $(CHROMIUM) || { \
	  if ! command -v apt-get >/dev/null; then echo "install Chromium at $(CHROMIUM)"; exit 1; fi; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

## The whole suite (unit, integration, e2e) against a real broker started for the run.
test: install browser
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
