"""Hostile bytes: NUL characters anywhere and oversized bodies are client errors, never a 500, and change
nothing. (PostgreSQL refuses NUL in text: without the check every lookup with one crashed.)"""

from __future__ import annotations

from typing import Any

from tests.api.test_errors_common import assert_problem, db_state
from tests.conftest import World

NUL = "\x00"


def test_nul_in_a_path_is_400(world: World, app: Any) -> None:
    before = db_state(app)
    for path in ("/v1/vms/%00", "/v1/vms/a%00b/start", "/v1/operations/%00", "/v1/tokens/%00"):
        method = "POST" if path.endswith("start") else "GET"
        if "tokens" in path:
            method = "DELETE"
        c = world.admin_a
        resp = c.client.open(path, method=method, headers={"Authorization": f"Bearer {c.token}"})
        assert_problem(resp, 400, "malformed-request")
    for path in ("/v1/tenants/%00", "/v1/hosts/%00"):
        assert_problem(world.operator.get(path), 400, "malformed-request")
    assert db_state(app) == before


def test_nul_in_a_query_is_422_naming_the_parameter(world: World) -> None:
    cases = [(world.admin_a, "/v1/vms?name=%00", "name"), (world.admin_a, "/v1/vms?state=ACTIVE%00", "state"),
             (world.admin_a, "/v1/audit?target_id=%00", "target_id"),
             (world.admin_a, "/v1/operations?target_id=x%00", "target_id"),
             (world.operator, "/v1/hosts?zone=%00", "zone"), (world.operator, "/v1/vms?tenant_id=%00", "tenant_id")]
    for caller, path, field in cases:
        body = assert_problem(caller.get(path), 422, "validation-error")
        assert field in body["errors"], (path, body)


def test_nul_in_a_json_string_is_422_naming_the_field(world: World, app: Any) -> None:
    a, op = world.admin_a, world.operator
    before = db_state(app)
    cases: list[tuple[Any, str, dict[str, Any], str]] = [
        (a, "/v1/vms", {"name": "x", "flavor": NUL}, "flavor"),
        (a, "/v1/vms", {"name": "x", "flavor": "small", "image": f"debian{NUL}"}, "image"),
        (op, "/v1/vms", {"name": "x", "flavor": "small", "tenant_id": NUL * 36}, "tenant_id"),
        (op, "/v1/vms", {"name": "x", "flavor": "small", "tenant_id": world.tenant_a, "host": NUL}, "host"),
        (a, "/v1/tokens", {"name": "x", "user_id": NUL * 36}, "user_id"),
        (op, "/v1/hosts", {"name": "hv9", "driver": "simulated", "uri": f"sim://hv9{NUL}", "vcpus": 8,
                           "ram_mib": 8192, "disk_gib": 100}, "uri"),
        (op, "/v1/hosts", {"name": "hv9", "driver": "proxmox", "uri": "https://pve:8006", "vcpus": 8,
                           "ram_mib": 8192, "disk_gib": 100, "options": {"token_secret": NUL}}, "options"),
    ]
    for caller, path, payload, field in cases:
        body = assert_problem(caller.post(path, json=payload), 422, "validation-error")
        assert field in body["errors"], (payload, body)
    assert db_state(app) == before


def test_oversized_body_is_413(world: World, app: Any) -> None:
    before = db_state(app)
    big = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'", "flavor": "small"}'
    for headers in ({}, {"Idempotency-Key": "big"}):
        r = world.admin_a.post("/v1/vms", data=big, headers={"Content-Type": "application/json", **headers})
        body = assert_problem(r, 413, "payload-too-large")
        assert "bytes" in body["detail"]
    es = world.admin_a.post("/v1/vms", data=big, headers={"Content-Type": "application/json",
                                                          "Accept-Language": "es"})
    assert assert_problem(es, 413, "payload-too-large")["title"] == "Cuerpo de la solicitud demasiado grande"
    assert db_state(app) == before
    # a big but reasonable body still goes through validation (and is refused for the name only)
    body = assert_problem(world.admin_a.post("/v1/vms", json={"name": "x" * 100_000, "flavor": "small"}), 422,
                          "validation-error")
    assert list(body["errors"]) == ["name"]


def test_absurd_ids_are_plain_404(world: World) -> None:
    for vm_id in ("x" * 10_000, "' OR 1=1 --", "../../etc/passwd", "%2F", "\u00e9\u00e8"):
        body = assert_problem(world.admin_a.get(f"/v1/vms/{vm_id}"), 404, "not-found")
        assert len(body["detail"]) < 200
