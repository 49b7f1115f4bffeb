"""ETag / If-Match on PATCH /v1/tenants/{id} and PATCH /v1/hosts/{id}: 428 without, 412 when stale."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_errors_common import assert_problem, db_state
from tests.conftest import World


def _targets(world: World) -> dict[str, tuple[str, dict[str, Any], dict[str, Any]]]:
    """kind -> (url, a change, another change)."""
    return {"tenant": (f"/v1/tenants/{world.tenant_b}", {"quota_vcpus": 12}, {"name": "Municipio Be"}),
            "host": (f"/v1/hosts/{world.hosts['hv1']}", {"state": "disabled", "state_reason": "firmware"},
                     {"cpu_ratio": 2.0})}


@pytest.mark.parametrize("kind", ["tenant", "host"])
def test_if_match_missing_stale_and_right(world: World, app: Any, kind: str) -> None:
    op = world.operator
    url, change, other = _targets(world)[kind]
    got = op.get(url)
    assert got.status_code == 200 and got.headers["ETag"] == '"1"'
    assert got.get_json()["version"] == 1
    before = db_state(app)

    body = assert_problem(op.patch(url, json=change), 428, "precondition-required")
    assert "If-Match" in body["detail"]
    assert db_state(app) == before
    body = assert_problem(op.patch(url, json=change, headers={"If-Match": '"7"'}), 412, "precondition-failed")
    assert "(1)" in body["detail"]
    assert db_state(app) == before
    for bad in ("1", "abc", '"x"', '"1", "2"'):
        assert_problem(op.patch(url, json=change, headers={"If-Match": bad}), 400, "malformed-request")
    assert db_state(app) == before

    r = op.patch(url, json=change, headers={"If-Match": got.headers["ETag"]})
    assert r.status_code == 200, r.get_json()
    assert r.headers["ETag"] == '"2"' and r.get_json()["version"] == 2
    for k, v in change.items():
        assert r.get_json()[k] == v
    assert op.get(url).headers["ETag"] == '"2"'
    # the old ETag is now stale: a second writer who read version 1 loses, and changes nothing
    mid = db_state(app)
    assert_problem(op.patch(url, json=other, headers={"If-Match": got.headers["ETag"]}), 412, "precondition-failed")
    assert db_state(app) == mid
    r = op.patch(url, json=other, headers={"If-Match": 'W/"2"'})
    assert r.status_code == 200 and r.headers["ETag"] == '"3"'
    # every accepted change is audited once, rejected ones not at all
    actions = [e["action"] for e in op.get(f"/v1/audit?target_id={url.rsplit('/', 1)[1]}").get_json()["items"]]
    assert len([a for a in actions if a.startswith(f"{kind}.") and a != f"{kind}.create"]) == 2, actions


def test_patch_validation_and_unknown_ids(world: World, app: Any) -> None:
    op = world.operator
    before = db_state(app)
    body = assert_problem(op.patch(f"/v1/tenants/{world.tenant_b}", json={"quota_vcpus": -1, "slug": "x"},
                                   headers={"If-Match": '"1"'}), 422, "validation-error")
    assert set(body["errors"]) == {"quota_vcpus", "slug"}
    body = assert_problem(op.patch(f"/v1/hosts/{world.hosts['hv1']}", json={"state": "broken", "vcpus": 0},
                                   headers={"If-Match": '"1"'}), 422, "validation-error")
    assert set(body["errors"]) == {"state", "vcpus"}
    assert_problem(op.patch("/v1/tenants/nope", json={"quota_vcpus": 1}, headers={"If-Match": '"1"'}), 404,
                   "not-found")
    assert_problem(op.patch("/v1/hosts/nope", json={"state": "enabled"}, headers={"If-Match": '"1"'}), 404,
                   "not-found")
    assert db_state(app) == before


def test_host_patch_with_a_bad_uri_is_422_and_changes_nothing(world: World, app: Any) -> None:
    op = world.operator
    url = f"/v1/hosts/{world.hosts['hv1']}"
    before = db_state(app)
    body = assert_problem(op.patch(url, json={"uri": "qemu:///system"}, headers={"If-Match": '"1"'}), 422,
                          "validation-error")
    assert list(body["errors"]) == ["uri"]
    assert db_state(app) == before


def test_tenant_admin_sees_own_tenant_with_etag_but_cannot_patch(world: World, app: Any) -> None:
    a = world.admin_a
    got = a.get(f"/v1/tenants/{world.tenant_a}")
    assert got.status_code == 200 and got.headers["ETag"] == '"1"'
    before = db_state(app)
    assert_problem(a.patch(f"/v1/tenants/{world.tenant_a}", json={"quota_vcpus": 1000},
                           headers={"If-Match": '"1"'}), 403, "forbidden")
    assert db_state(app) == before
    ghost = a.get(f"/v1/tenants/{world.tenant_b}", headers={"X-Request-ID": "r"})
    assert_problem(ghost, 404, "not-found")
