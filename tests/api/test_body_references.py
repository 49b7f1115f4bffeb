"""A body that names an object that does not exist is refused with a problem, never a 500. Creating a user
for an unknown municipality was a foreign-key error (500), found by schemathesis."""

from __future__ import annotations

from typing import Any

from tests.api.test_errors_common import assert_problem, db_state
from tests.conftest import World

UNKNOWN = "0" * 36


def test_references_to_missing_objects_are_refused(world: World, app: Any) -> None:
    op = world.operator
    before = db_state(app)
    for lang, words in (("en", "No municipality"), ("es", "No existe un municipio")):
        body = assert_problem(op.post("/v1/users", json={"username": "ghost", "role": "member", "tenant_id": UNKNOWN},
                                      headers={"Accept-Language": lang}), 422, "validation-error")
        assert body["errors"] == {"tenant_id": ["Unknown municipality."]} and words in body["detail"]
    assert_problem(op.post("/v1/tokens", json={"user_id": UNKNOWN, "name": "x"}), 404, "not-found")
    assert_problem(op.post("/v1/vms", json={"name": "a", "flavor": "small", "tenant_id": UNKNOWN}), 404, "not-found")
    assert db_state(app) == before
    r = op.post("/v1/users", json={"username": "real", "role": "member", "tenant_id": world.tenant_a})
    assert r.status_code == 201 and r.get_json()["tenant_id"] == world.tenant_a
