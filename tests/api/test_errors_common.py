"""Helpers shared by the bad-input and fault suites (issue 2), and tests that the helpers can see a change.

``db_state`` reads every row of the tables a request could touch, so ``assert db_state(app) == before``
proves that a refused request changed nothing: no VM, claim, operation, audit entry, idempotency record,
token, quota or host change.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from tests.conftest import World

STATE_TABLES = {"vms": "id", "operations": "id", "audit_entries": "seq", "idempotency_records": "id",
                "api_tokens": "id", "users": "id", "tenants": "id", "hosts": "id", "flavors": "id",
                "host_allocations": "host_id", "tenant_usage": "tenant_id", "images": "id", "volumes": "id",
                "keypairs": "id", "storage_pools": "id", "pool_allocations": "pool_id", "console_tokens": "id",
                "networks": "id", "network_grants": "network_id, tenant_id", "ports": "id",
                "security_groups": "id", "security_rules": "id", "port_security_groups": "port_id, group_id",
                "usage_intervals": "id"}
PROBLEM = "application/problem+json"


# filled in by the audit sealer moments after an entry is committed: a derived record, not a change
SEALED = frozenset({"chain_seq", "tenant_seq", "entry_hash", "salt"})


def db_state(app: Any) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tables that a request may change, in a stable order."""
    from controlplane.db import db

    with app.app_context():
        out = {}
        for table, key in STATE_TABLES.items():
            rows = db.session.execute(text(f"SELECT * FROM {table} ORDER BY {key}")).mappings().all()
            out[table] = [{k: (str(v) if v is not None else None) for k, v in r.items()
                           if not (table == "audit_entries" and k in SEALED)} for r in rows]
        db.session.rollback()
        return out


def sim_domains() -> dict[str, list[str]]:
    from agents.simulated import open_datacenter

    return open_datacenter().inventory()


def assert_problem(resp: Any, status: int, slug: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem document with the members every error of ours carries; returns the body."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:2000])
    assert resp.mimetype == PROBLEM, resp.headers
    body = json.loads(resp.get_data(as_text=True))
    assert isinstance(body, dict)
    for member in ("type", "title", "status", "detail"):
        assert member in body, body
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["type"].startswith("/problems/")
    if slug is not None:
        assert body["type"] == f"/problems/{slug}", body
    raw = resp.get_data(as_text=True)
    assert "Traceback" not in raw and 'File "' not in raw
    return body


def test_db_state_sees_a_created_vm_and_its_claim(world: World, app: Any) -> None:
    before = db_state(app)
    r = world.admin_a.post("/v1/vms", json={"name": "seen", "flavor": "small"})
    assert r.status_code == 202
    after = db_state(app)
    assert after != before
    assert len(after["vms"]) == len(before["vms"]) + 1
    assert after["vms"][0]["host_id"]  # the claim
    assert len(after["operations"]) == 1 and len(after["audit_entries"]) == len(before["audit_entries"]) + 1
    assert world.admin_a.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"


def test_assert_problem_rejects_a_success(world: World) -> None:
    ok = world.admin_a.get("/v1/vms")
    try:
        assert_problem(ok, 200)
    except AssertionError:
        return
    raise AssertionError("assert_problem accepted a non-problem response")
