"""Issue 12: a deeply nested JSON body is a 400 (it used to be a RecursionError, a 500), measured without
parsing it; an over-large body is a 413, with Content-Length and chunked alike. Both are problem+json."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from api.jsonlimits import MAX_JSON_DEPTH, exceeds_depth
from tests.api.test_errors_common import assert_problem, db_state
from tests.conftest import World

JSON = {"Content-Type": "application/json"}


def nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


@pytest.mark.parametrize(("raw", "expected"), [
    (nested(MAX_JSON_DEPTH), False),
    (nested(MAX_JSON_DEPTH + 1), True),
    (b'{"a": ' * 40 + b"1" + b"}" * 40, True),
    (b'{"a": [' * 20 + b"1" + b"]}" * 20, True),  # 40 levels, objects and arrays mixed
    (b"[]" * 10_000, False),  # many brackets, never deep
    (b'["' + b"[" * 5000 + b'"]', False),  # brackets inside a string do not count
    (b'["\\"' + b"[" * 5000 + b'"]', False),  # nor after an escaped quote
    (b'["\\\\"' + nested(40) + b"]", True),  # an escaped backslash ends the string: these count
    (b"[" * 5000, True),  # unclosed: still too deep before it is even invalid
])
def test_depth_scan(raw: bytes, expected: bool) -> None:
    assert exceeds_depth(raw, MAX_JSON_DEPTH) is expected


@pytest.mark.parametrize("path", ["/v1/vms", "/v1/hosts", "/v1/plans"])
def test_a_5000_deep_body_is_400_problem(world: World, app: Any, path: str) -> None:
    before = db_state(app)
    for body in (nested(5000), b'{"name": ' + nested(5000) + b"}"):
        for headers in (JSON, {**JSON, "Idempotency-Key": "deep-1"}):  # the key's body hash parses JSON too
            problem = assert_problem(world.operator.post(path, data=body, headers=headers), 400, "malformed-request")
            assert str(MAX_JSON_DEPTH) in problem["detail"]
    assert db_state(app) == before


def test_depth_limit_speaks_spanish(world: World) -> None:
    r = world.admin_a.post("/v1/vms", data=nested(100), headers={**JSON, "Accept-Language": "es"})
    body = assert_problem(r, 400, "malformed-request")
    assert body["title"] == "Solicitud mal formada" and "niveles" in body["detail"]


def test_nesting_within_the_limit_reaches_validation(world: World) -> None:
    """A body nested 32 deep is parsed and judged by the schema (422), not refused as malformed."""
    body = b'{"name": ' + nested(MAX_JSON_DEPTH - 1) + b"}"
    problem = assert_problem(world.admin_a.post("/v1/vms", data=body, headers=JSON), 422, "validation-error")
    assert "name" in problem["errors"]


def test_brackets_inside_strings_are_data(world: World) -> None:
    description = "[{" * 200 + '\\"' + "}]" * 40
    r = world.operator.post("/v1/flavors", json={"name": "brackets", "vcpus": 1, "ram_mib": 512, "disk_gib": 1,
                                                 "description": description})
    assert r.status_code == 201, r.get_data(as_text=True)
    assert r.get_json()["description"] == description


def chunked(caller: Any, path: str, body: bytes) -> Any:
    """POST ``body`` without Content-Length, as a server that decodes chunked bodies hands it over (it sets
    ``wsgi.input_terminated``, as gunicorn and werkzeug's server do)."""
    builder = EnvironBuilder(path=path, method="POST", input_stream=io.BytesIO(body),
                             headers={**caller._headers(JSON), "Transfer-Encoding": "chunked"})
    environ = builder.get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    return caller.client.open(Request(environ))


def test_oversized_body_is_413_problem_with_and_without_content_length(world: World, app: Any) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    big = json.dumps({"name": "x" * (limit + 10)}).encode()
    before = db_state(app)
    body = assert_problem(world.admin_a.post("/v1/vms", data=big, headers=JSON), 413, "payload-too-large")
    assert str(limit) in body["detail"]
    # werkzeug would read a chunked body up to the limit and hand over the first MiB as if it were all
    for size in (limit + 1, 5 * limit):
        padded = b'{"name": "' + b"x" * (size - 12) + b'"}'
        assert len(padded) == size
        assert_problem(chunked(world.admin_a, "/v1/vms", padded), 413, "payload-too-large")
    # exactly the limit is allowed (then the schema judges the name: too long)
    exact = b'{"name": "' + b"x" * (limit - 12) + b'"}'
    problem = assert_problem(chunked(world.admin_a, "/v1/vms", exact), 422, "validation-error")
    assert list(problem["errors"]) == ["name"]
    assert db_state(app) == before
    # a small chunked body is read as usual
    r = chunked(world.admin_a, "/v1/vms", json.dumps({"name": "chunked-ok", "flavor": "small"}).encode())
    assert r.status_code == 202, r.get_data(as_text=True)
    world.admin_a.wait_op(r.get_json()["operation_id"])
