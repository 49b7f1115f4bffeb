"""Idempotency-Key on POST: replay the same answer for the same key and body, refuse another body."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.test_errors_common import assert_problem, db_state
from tests.conftest import World

VM = {"name": "idem-01", "flavor": "small"}


def _vm_rows(app: Any) -> list[dict[str, Any]]:
    return db_state(app)["vms"]


def test_same_key_and_body_replays_the_first_answer(world: World, app: Any) -> None:
    a = world.admin_a
    first = a.post("/v1/vms", json=VM, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 202 and "Idempotent-Replayed" not in first.headers
    assert a.wait_op(first.get_json()["operation_id"])["status"] == "succeeded"
    state = db_state(app)

    # the same body with keys in another order is the same request
    again = a.post("/v1/vms", json={"flavor": "small", "name": "idem-01"}, headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert again.get_json()["vm"]["id"] == first.get_json()["vm"]["id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.mimetype == "application/json"
    assert db_state(app) == state  # nothing new: no VM, operation or audit entry
    assert a.get("/v1/vms").get_json()["total"] == 1


def test_same_key_other_body_is_422_and_changes_nothing(world: World, app: Any) -> None:
    a = world.admin_a
    first = a.post("/v1/vms", json=VM, headers={"Idempotency-Key": "k-2"})
    assert first.status_code == 202
    a.wait_op(first.get_json()["operation_id"])
    before = db_state(app)
    r = a.post("/v1/vms", json={**VM, "name": "other"}, headers={"Idempotency-Key": "k-2"})
    body = assert_problem(r, 422, "idempotency-key-reused")
    assert "Idempotency-Key" in body["detail"]
    # the same key on another path is another request too
    r = a.post("/v1/tokens", json={"name": "t"}, headers={"Idempotency-Key": "k-2"})
    assert_problem(r, 422, "idempotency-key-reused")
    assert db_state(app) == before


def test_keys_belong_to_one_principal(world: World, app: Any) -> None:
    a = world.admin_a.post("/v1/vms", json=VM, headers={"Idempotency-Key": "shared"})
    b = world.admin_b.post("/v1/vms", json=VM, headers={"Idempotency-Key": "shared"})
    assert a.status_code == b.status_code == 202
    assert "Idempotent-Replayed" not in b.headers
    assert a.get_json()["vm"]["id"] != b.get_json()["vm"]["id"]
    assert b.get_json()["vm"]["tenant_id"] == world.tenant_b
    for c, r in ((world.admin_a, a), (world.admin_b, b)):
        assert c.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"


def test_a_failed_request_can_be_retried_with_its_key(world: World, app: Any) -> None:
    b = world.admin_b  # quota: 8 vCPU
    big = {"name": "big", "vcpus": 10, "ram_mib": 1024, "disk_gib": 10}
    before = db_state(app)
    assert_problem(b.post("/v1/vms", json=big, headers={"Idempotency-Key": "retry-me"}), 403, "quota-exceeded")
    assert db_state(app) == before  # not even an idempotency record is kept for a failure
    # the operator raises the quota; the client retries with the same key and body
    t = world.operator.get(f"/v1/tenants/{world.tenant_b}")
    r = world.operator.patch(f"/v1/tenants/{world.tenant_b}", json={"quota_vcpus": 16},
                             headers={"If-Match": t.headers["ETag"]})
    assert r.status_code == 200
    r = b.post("/v1/vms", json=big, headers={"Idempotency-Key": "retry-me"})
    assert r.status_code == 202, r.get_json()
    assert "Idempotent-Replayed" not in r.headers
    assert b.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"
    replay = b.post("/v1/vms", json=big, headers={"Idempotency-Key": "retry-me"})
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json()["vm"]["id"] == r.get_json()["vm"]["id"]
    assert len(_vm_rows(app)) == 1


def test_a_validation_failure_with_a_key_can_be_retried_with_another_body(world: World, app: Any) -> None:
    a = world.admin_a
    assert_problem(a.post("/v1/vms", json={**VM, "name": "bad\n"}, headers={"Idempotency-Key": "fix-me"}), 422,
                   "validation-error")
    r = a.post("/v1/vms", json=VM, headers={"Idempotency-Key": "fix-me"})
    assert r.status_code == 202, r.get_json()
    assert a.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"


def test_bad_keys_are_400(world: World, app: Any) -> None:
    before = db_state(app)
    for key in ("", "x" * 256, "a\tb"):
        r = world.admin_a.post("/v1/vms", json=VM, headers={"Idempotency-Key": key})
        assert_problem(r, 400, "malformed-request")
    assert db_state(app) == before


def test_replay_of_other_posts(world: World, app: Any) -> None:
    op = world.operator
    tenant = {"slug": "municipio-c", "name": "Municipio C", "quota_vcpus": 4}
    first = op.post("/v1/tenants", json=tenant, headers={"Idempotency-Key": "t-1"})
    assert first.status_code == 201
    again = op.post("/v1/tenants", json=tenant, headers={"Idempotency-Key": "t-1"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json() and again.headers["Location"] == first.headers["Location"]
    # without the key the same body is a new request, refused because the slug is taken
    body = assert_problem(op.post("/v1/tenants", json=tenant), 422, "validation-error")
    assert list(body["errors"]) == ["slug"]


def test_replayed_token_creation_neither_mints_nor_stores_the_secret(world: World, app: Any) -> None:
    tok = world.admin_a.post("/v1/tokens", json={"name": "ci"}, headers={"Idempotency-Key": "tok"})
    assert tok.status_code == 201
    secret = tok.get_json()["token"]
    # the secret is shown once: it is not kept in clear anywhere, not even for replays
    assert secret not in str(db_state(app))
    tok2 = world.admin_a.post("/v1/tokens", json={"name": "ci"}, headers={"Idempotency-Key": "tok"})
    assert tok2.status_code == 201 and tok2.headers["Idempotent-Replayed"] == "true"
    assert tok2.get_json()["id"] == tok.get_json()["id"]
    assert "token" not in tok2.get_json() and secret not in tok2.get_data(as_text=True)
    assert tok2.get_json() == {k: v for k, v in tok.get_json().items() if k != "token"}
    names = [t["name"] for t in world.admin_a.get("/v1/tokens").get_json()["items"]]
    assert names.count("ci") == 1


def test_a_key_still_in_progress_is_409_and_changes_nothing(world: World, app: Any) -> None:
    """A second request while the first with the same key is running (simulated by claiming the key the way
    the first request does) must neither run nor wait: 409, and the client retries later."""
    from api.idempotency import _body_hash
    from controlplane.services import idempotency

    a = world.admin_a
    with app.test_request_context("/v1/vms", method="POST", json=VM):
        body_hash = _body_hash()
    with app.app_context():
        record = idempotency.begin(a.user_id, "busy", "POST", "/v1/vms", body_hash)
        assert isinstance(record, str)
    before = db_state(app)
    body = assert_problem(a.post("/v1/vms", json=VM, headers={"Idempotency-Key": "busy"}), 409,
                          "idempotency-in-progress")
    assert "retry" in body["detail"]
    assert db_state(app) == before
    with app.app_context():
        idempotency.abandon(record)  # the first request failed: the key is free again
    r = a.post("/v1/vms", json=VM, headers={"Idempotency-Key": "busy"})
    assert r.status_code == 202 and "Idempotent-Replayed" not in r.headers
    a.wait_op(r.get_json()["operation_id"])


def test_a_crash_frees_the_key(world: World, app: Any) -> None:
    from werkzeug.routing import Rule

    from api.idempotency import idempotent

    calls: list[int] = []

    @idempotent
    def flaky() -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first attempt crashes")
        return app.response_class('{"ok": true}', status=201, mimetype="application/json")

    endpoint = f"test_only_flaky_{uuid.uuid4().hex}"
    app.view_functions[endpoint] = flaky
    app.url_map.add(Rule(f"/v1/test-only/{endpoint}", endpoint=endpoint, methods=["POST"]))
    url = f"/v1/test-only/{endpoint}"
    assert_problem(world.admin_a.post(url, json={}, headers={"Idempotency-Key": "crash"}), 500, "internal-error")
    assert db_state(app)["idempotency_records"] == []
    r = world.admin_a.post(url, json={}, headers={"Idempotency-Key": "crash"})
    assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers
    r = world.admin_a.post(url, json={}, headers={"Idempotency-Key": "crash"})
    assert r.status_code == 201 and r.headers["Idempotent-Replayed"] == "true" and r.get_json() == {"ok": True}
    assert len(calls) == 2
