"""JSON log lines (issue 15): every line one JSON object with the request's context."""

from __future__ import annotations

import io
import json

import pytest

from controlplane import context, logs
from tests.api.test_unexpected_errors import _scratch_root as _root


def test_json_lines_carry_request_actor_tenant_and_operation() -> None:
    root, out = _root("ctx"), io.StringIO()
    assert logs.configure(root, out, fmt="json") is not None
    tokens = [(v, v.set(x)) for v, x in ((context.request_id, "req-7"), (context.actor, "admin@sm"),
                                         (context.tenant, "t-1"), (context.operation_id, "op-9"))]
    try:
        root.info("creating %s", "web-01")
        try:
            raise ValueError("broken")
        except ValueError:
            root.exception("failed ñandú")
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
    root.warning("outside")
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert {k: first[k] for k in ("level", "message", "request_id", "actor", "tenant", "operation_id")} == {
        "level": "INFO", "message": "creating web-01", "request_id": "req-7", "actor": "admin@sm",
        "tenant": "t-1", "operation_id": "op-9"}
    assert first["logger"] == "tests.scratch-root.ctx" and first["time"]
    assert second["message"] == "failed ñandú" and "ValueError: broken" in second["exc_info"]
    assert third["request_id"] == "-" and third["actor"] == "-"


def test_text_stays_for_the_terminal_and_nothing_else_is_accepted() -> None:
    root, out = _root("text"), io.StringIO()
    logs.configure(root, out, fmt="text")
    root.info("hola")
    assert "[request -] hola" in out.getvalue()
    with pytest.raises(ValueError, match="json or text"):
        logs.formatter("xml")
