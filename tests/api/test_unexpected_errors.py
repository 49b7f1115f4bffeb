"""Issue 12: an unhandled error is a 500 problem without internals, and the log record carries the full
traceback and the request id; logging is configured once, only where nobody configured it."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest

from api.routes import flavors
from controlplane import context, logs
from tests.api.test_errors_common import assert_problem
from tests.conftest import World

SECRET = "db-password=hunter2 at /srv/confluencia/internal.py"


def _explode(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError(SECRET)


def test_unhandled_error_is_a_bare_500_and_its_log_record_has_traceback_and_request_id(
        world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(flavors.flavors, "list_flavors", _explode)  # a bug deep in a service
    with caplog.at_level(logging.ERROR, logger="confluencia.api"):
        r = world.admin_a.get("/v1/flavors", headers={"X-Request-ID": "req-boom-1", "Accept-Language": "es"})
    body = assert_problem(r, 500, "internal-error")
    raw = r.get_data(as_text=True)
    assert SECRET not in raw and "RuntimeError" not in raw
    assert body["request_id"] == "req-boom-1" and body["title"] == "Error interno"
    records = [rec for rec in caplog.records if rec.name == "confluencia.api" and rec.levelno == logging.ERROR]
    assert len(records) == 1, records
    record = records[0]
    assert record.request_id == "req-boom-1"  # type: ignore[attr-defined]
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert "GET /v1/flavors" in record.getMessage()
    # formatted the way the configured handler prints it: request id and the whole traceback
    text = logging.Formatter(logs.FORMAT).format(record)
    assert "[request req-boom-1]" in text
    assert "Traceback (most recent call last)" in text and SECRET in text and "_explode" in text


def _scratch_root(name: str) -> logging.Logger:
    """A logger standing in for the root logger (the real one carries pytest's handlers)."""
    logger = logging.getLogger(f"tests.scratch-root.{name}")
    logger.propagate = False
    logger.handlers.clear()
    logger.setLevel(logging.INFO)
    return logger


def test_configure_adds_one_handler_with_request_ids_and_tracebacks() -> None:
    root, out = _scratch_root("fresh"), io.StringIO()
    handler = logs.configure(root, out, fmt="text")
    assert handler is not None and root.handlers == [handler]
    assert logs.configure(root, io.StringIO()) is None and root.handlers == [handler]  # once only
    token = context.request_id.set("rid-42")
    try:
        try:
            raise ValueError("broken invariant")
        except ValueError:
            root.exception("while serving")
        context.request_id.set(None)  # outside any request
        root.info("outside any request")
    finally:
        context.request_id.reset(token)
    lines = out.getvalue()
    assert "ERROR" in lines and "[request rid-42] while serving" in lines
    assert "Traceback (most recent call last)" in lines and "ValueError: broken invariant" in lines
    assert "[request -] outside any request" in lines


def test_configure_leaves_configured_logging_alone() -> None:
    root = _scratch_root("configured")
    existing = logging.StreamHandler(io.StringIO())
    root.addHandler(existing)
    assert logs.configure(root, io.StringIO()) is None
    assert root.handlers == [existing]


def test_the_app_factory_kept_pytests_handlers(caplog: pytest.LogCaptureFixture, app: Any) -> None:
    """The app was made while pytest's handlers were on the root logger: ours was not added, and caplog
    hears the confluencia loggers."""
    root = logging.getLogger()
    assert not [h for h in root.handlers if isinstance(h.formatter, logging.Formatter)
                and h.formatter._fmt == logs.FORMAT]
    logging.getLogger("confluencia.api").warning("heard")
    assert "heard" in caplog.text
