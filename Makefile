# Confluencia: `make demo` runs the control plane on embedded defaults; `make test` installs and tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
EXTRAS ?= dev,postgres,redis

.PHONY: demo test lint typecheck unit install system-deps bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests need (libvirt, qemu, ...). Only when root; harmless otherwise.
system-deps:
	bash .ci/system-deps.sh

demo: install
	$(VENV)/bin/confluencia demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check . || true

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest tests/unit -q

# The tests use the local PostgreSQL and Redis when they answer (TEST_DATABASE_URL, TEST_REDIS_URL).
test: system-deps install lint typecheck
	source .ci/test-env.sh && $(PY) -m pytest -q

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache var
