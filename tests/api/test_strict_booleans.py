"""Issue 12: a Boolean in a JSON body is JSON ``true`` or ``false``; 0, 1 and "true" are refused (422).
Query strings keep taking the words true and false."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import Schema, fields

from api.schemas.common import StrictBoolean, StrictSchema
from tests.api.test_errors_common import assert_problem, db_state
from tests.conftest import World

NOT_BOOLEANS = [0, 1, "true", "false", "yes", "on", "1", "t", 1.0]


@pytest.mark.parametrize("value", NOT_BOOLEANS)
def test_body_booleans_refuse_numbers_and_strings(world: World, app: Any, value: Any) -> None:
    op, host = world.operator, world.hosts["hv2"]
    before = db_state(app)
    body = assert_problem(op.post(f"/v1/hosts/{host}/maintenance", json={"enabled": value}), 422, "validation-error")
    assert list(body["errors"]) == ["enabled"]
    etag = op.get(f"/v1/tenants/{world.tenant_a}").headers["ETag"]
    body = assert_problem(op.patch(f"/v1/tenants/{world.tenant_a}", json={"exclude_from_rebalance": value},
                                   headers={"If-Match": etag}), 422, "validation-error")
    assert list(body["errors"]) == ["exclude_from_rebalance"]
    assert db_state(app) == before


def test_body_booleans_take_true_and_false(world: World) -> None:
    op = world.operator
    for host, enabled, state in (("hv1", False, "enabled"), ("hv2", True, "maintenance")):
        r = op.post(f"/v1/hosts/{world.hosts[host]}/maintenance", json={"enabled": enabled})
        assert r.status_code == 200 and r.get_json()["state"] == state, r.get_data(as_text=True)
    for value in (True, False):
        etag = op.get(f"/v1/hosts/{world.hosts['hv1']}").headers["ETag"]
        r = op.patch(f"/v1/hosts/{world.hosts['hv1']}", json={"exclude_from_rebalance": value},
                     headers={"If-Match": etag})
        assert r.status_code == 200 and r.get_json()["exclude_from_rebalance"] is value


def test_query_booleans_take_the_words_true_and_false_only(world: World) -> None:
    c = world.admin_a
    for word in ("true", "false", "True", "FALSE"):
        assert c.get(f"/v1/vms?include_deleted={word}").status_code == 200, word
    for word in ("1", "0", "yes", "on", "", "truthy"):
        body = assert_problem(c.get(f"/v1/vms?include_deleted={word}"), 422, "validation-error")
        assert list(body["errors"]) == ["include_deleted"], word
    assert world.operator.post("/v1/reconcile?dry_run=true").status_code == 200
    assert_problem(world.operator.post("/v1/reconcile?dry_run=1"), 422, "validation-error")


def _all_subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _all_subclasses(sub)
    return found


def _booleans(schema: Schema, trail: str = "") -> list[tuple[str, fields.Field]]:
    out: list[tuple[str, fields.Field]] = []
    for name, field in schema.fields.items():
        inner = field.inner if isinstance(field, fields.List) else field
        if isinstance(inner, fields.Nested) and isinstance(inner.schema, Schema):
            out += _booleans(inner.schema, f"{trail}{name}.")
        elif isinstance(inner, fields.Boolean):
            out.append((trail + name, inner))
    return out


def test_every_boolean_that_is_loaded_is_the_strict_one(app: Any) -> None:
    """Every input schema (StrictSchema) of the API, however deep, uses ``api.schemas.common.Bool``."""
    loaders = [cls for cls in _all_subclasses(StrictSchema) if cls.__module__.startswith("api.")]
    seen = []
    for cls in loaders:
        for name, field in _booleans(cls()):
            assert isinstance(field, StrictBoolean), f"{cls.__module__}.{cls.__name__}.{name} is a plain Boolean"
            seen.append(name)
    assert {"enabled", "pinned", "exclude_from_rebalance", "include_deleted", "dry_run"} <= set(seen), seen
