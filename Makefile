# Confluencia: `make demo` runs the control plane on embedded defaults; `make test` installs and tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# libvirt-python builds only where libvirt's headers are installed (`make system-deps` as root does it).
EXTRAS ?= dev,postgres,redis,proxmox,ssh$(shell pkg-config --exists libvirt 2>/dev/null && echo ,libvirt)

.PHONY: demo test lint typecheck unit install system-deps bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[$(EXTRAS)]'
	echo '$(EXTRAS)' > $(STAMP)

# Re-install when the set of extras changed (e.g. libvirt headers appeared after system-deps).
install: system-deps
	@grep -qxF '$(EXTRAS)' $(STAMP) 2>/dev/null || rm -f $(STAMP)
	@$(MAKE) --no-print-directory $(STAMP)

# Debian packages the tests need (libvirt, qemu, ...). Only when root; harmless otherwise.
system-deps:
	bash .ci/system-deps.sh

demo: $(STAMP)
	$(VENV)/bin/confluencia demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest tests/unit -q

# The tests use the local PostgreSQL and Redis when they answer (TEST_DATABASE_URL, TEST_REDIS_URL);
# the API and claim tests then run a second time on SQLite, the embedded default (not those listed below).
test: install lint typecheck
	source .ci/test-env.sh && $(PY) -m pytest -q
	TEST_DATABASE_URL= $(PY) -m pytest -q -p no:cacheprovider tests/api tests/integration/test_concurrent_claims.py \
	  --ignore=tests/api/test_schemathesis.py --ignore=tests/api/test_sso.py --ignore=tests/api/test_dashboard.py \
	  --ignore=tests/api/test_metrics.py --ignore=tests/api/test_cli_usage_audit.py
# (ignored above: they ran on PostgreSQL and exercise the HTTP, sign-in, dashboard and CLI layers, not the database)

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache var
