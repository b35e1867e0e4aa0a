# Developer entry points. `make demo` and `make test` are the two commands README starts with.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SRC    := src tests harness bench examples layer docs

.PHONY: help test lint format unit integration bench bench-quick bench-micro demo demo-failover layer validate-template mariadb clean

help:
	@echo "make demo         run the example handler through a simulated Lambda fleet (~30 s)"
	@echo "make demo-failover  the example handler through one Aurora-like failover on a local cluster (~40 s)"
	@echo "make test         lint + type check + every test (unit, integration, layer)"
	@echo "make unit         unit tests only (no database)"
	@echo "make integration  integration tests against the private MariaDB"
	@echo "make lint         ruff check, ruff format --check, mypy --strict"
	@echo "make format       ruff format + ruff check --fix"
	@echo "make bench        the full Lambda-fleet benchmark (about 30 min)"
	@echo "make bench-quick  a short benchmark run (about 5 min)"
	@echo "make bench-micro  only the micro-benchmarks: hot path vs raw PyMySQL, import time (~1 min)"
	@echo "make layer        build/serverless-mysql-layer.zip without SAM"
	@echo "make validate-template  cfn-lint + sam validate --lint on template.yaml (offline)"
	@echo "make clean        remove build output and the virtualenv"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

# The integration tests start a private MariaDB; install the server when it is missing.
mariadb:
	@if [ -n "$$SMYSQL_TEST_URL" ] || command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "mariadbd not found: installing mariadb-server with apt"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null; \
	else echo "MariaDB is needed for the tests: install mariadb-server (or set SMYSQL_TEST_URL=mysql://root:pw@127.0.0.1:3306)"; exit 1; fi

lint: $(STAMP)
	$(VENV)/bin/ruff check $(SRC)
	$(VENV)/bin/ruff format --check $(SRC)
	$(VENV)/bin/mypy --strict src tests harness docs bench examples/handler.py
	$(VENV)/bin/mypy --strict examples/orm/handler.py  # a second run: both examples are modules named handler

format: $(STAMP)
	$(VENV)/bin/ruff format $(SRC)
	$(VENV)/bin/ruff check --fix $(SRC)

test: lint mariadb
	$(PY) -m pytest

unit: $(STAMP)
	$(PY) -m pytest tests/unit

integration: $(STAMP) mariadb
	$(PY) -m pytest tests/integration

bench: $(STAMP) mariadb
	$(PY) -m bench

bench-quick: $(STAMP) mariadb
	$(PY) -m bench --quick

bench-micro: $(STAMP) mariadb
	$(PY) -m bench --micro

demo: $(STAMP) mariadb
	$(PY) -m bench.demo

demo-failover: $(STAMP) mariadb
	$(PY) -m bench.demo_failover

layer:
	$(MAKE) -C layer zip PYTHON=$(PYTHON)

validate-template:
	$(MAKE) -C layer validate PYTHON=$(PYTHON)

clean:
	rm -rf build .aws-sam $(VENV) .pytest_cache .mypy_cache .ruff_cache
