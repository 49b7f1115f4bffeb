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
	PATH="$(VENV)/bin:$$PATH" $(VENV)/bin/ansible-lint --offline -c ansible/.ansible-lint ansible/

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest tests/unit -q

# The tests use the local PostgreSQL and Redis when they answer (TEST_DATABASE_URL, TEST_REDIS_URL), in two streams
# at once (.ci/pytest-streams.sh: the lab and broker tests, and the rest); the API tests then run a second time on
# SQLite, the embedded default, except the modules listed here, which exercise HTTP, sign-in, dashboard, CLI and
# placement layers, not the database (they ran on PostgreSQL).
test: install lint typecheck
	PY=$(PY) HTTP_ONLY="$(HTTP_ONLY)" bash .ci/pytest-streams.sh

HTTP_ONLY := test_schemathesis.py test_sso.py test_dashboard.py test_metrics.py test_cli_usage_audit.py \
  test_body_references.py test_conventions_http.py test_docs_offline.py test_errors_hostile.py test_errors_input.py \
  test_json_limits.py test_openapi_truth.py test_rate_limits.py test_security_headers.py test_strict_booleans.py \
  test_unexpected_errors.py test_migration_domains.py

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache var
