"""Pagination and filters on /v1/vms (and the same envelope elsewhere)."""

from __future__ import annotations

from typing import Any

from agents.simulated import open_datacenter
from tests.api.test_errors_common import assert_problem
from tests.conftest import World, wait_for

DATACENTER = open_datacenter()  # the test session's store (tests/conftest.py sets CONFLUENCIA_SIM_STATE)


def _make(world: World, n: int) -> list[str]:
    a = world.admin_a
    ids = []
    for i in range(n):
        r = a.post("/v1/vms", json={"name": f"web-{i:02d}", "flavor": "small"})
        assert r.status_code == 202
        ids.append(r.get_json()["vm"]["id"])
        a.wait_op(r.get_json()["operation_id"])
    return ids


def test_limit_offset_total_walk_every_vm_once(world: World) -> None:
    ids = _make(world, 5)
    a = world.admin_a
    seen: list[str] = []
    for offset in (0, 2, 4):
        page = a.get(f"/v1/vms?limit=2&offset={offset}").get_json()
        assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == offset
        assert len(page["items"]) == (2 if offset < 4 else 1)
        seen += [v["id"] for v in page["items"]]
    assert seen == ids  # oldest first, no duplicates, nothing missing
    beyond = a.get("/v1/vms?offset=50").get_json()
    assert beyond["items"] == [] and beyond["total"] == 5
    default = a.get("/v1/vms").get_json()
    assert default["limit"] == 50 and default["offset"] == 0 and len(default["items"]) == 5


def test_state_and_name_filters(world: World) -> None:
    a = world.admin_a
    ids = _make(world, 3)
    assert a.wait_op(a.post(f"/v1/vms/{ids[1]}/stop").get_json()["id"])["status"] == "succeeded"
    wait_for(lambda: a.get(f"/v1/vms/{ids[1]}").get_json()["state"] == "STOPPED")
    stopped = a.get("/v1/vms?state=STOPPED").get_json()
    assert [v["id"] for v in stopped["items"]] == [ids[1]] and stopped["total"] == 1
    active = a.get("/v1/vms?state=ACTIVE&limit=1").get_json()
    assert active["total"] == 2 and len(active["items"]) == 1 and active["items"][0]["state"] == "ACTIVE"
    assert a.get("/v1/vms?state=ERROR").get_json() == {"items": [], "total": 0, "limit": 50, "offset": 0}
    named = a.get("/v1/vms?name=web-02").get_json()
    assert [v["id"] for v in named["items"]] == [ids[2]]
    # LIKE wildcards in the substring are literal
    assert a.get("/v1/vms?name=%25").get_json()["total"] == 0
    assert a.get("/v1/vms?name=web_0").get_json()["total"] == 0
    # other municipalities see none of it; operators see all and may filter by tenant and host
    assert world.admin_b.get("/v1/vms").get_json()["total"] == 0
    assert world.operator.get(f"/v1/vms?tenant_id={world.tenant_a}").get_json()["total"] == 3
    assert world.operator.get(f"/v1/vms?tenant_id={world.tenant_b}").get_json()["total"] == 0
    host = a.get(f"/v1/vms/{ids[0]}").get_json()["host_id"]
    on_host = world.operator.get(f"/v1/vms?host_id={host}").get_json()
    assert on_host["total"] >= 1 and all(v["host_id"] == host for v in on_host["items"])
    assert_problem(a.get(f"/v1/vms?host_id={host}"), 403, "forbidden")


def test_building_state_filter(world: World) -> None:
    a = world.admin_a
    DATACENTER.set_delay_scale(2.0)  # a create takes 1 s
    try:
        r = a.post("/v1/vms", json={"name": "slow", "flavor": "small"})
        vm_id = r.get_json()["vm"]["id"]
        wait_for(lambda: a.get("/v1/vms?state=BUILDING").get_json()["total"] == 1, timeout=5)
        assert a.get("/v1/vms?state=ACTIVE").get_json()["total"] == 0
    finally:
        DATACENTER.set_delay_scale(0.0)
    a.wait_op(r.get_json()["operation_id"])
    assert [v["id"] for v in a.get("/v1/vms?state=ACTIVE").get_json()["items"]] == [vm_id]


def test_bad_list_arguments_are_422(world: World) -> None:
    a = world.admin_a
    cases: list[tuple[str, str]] = [
        ("limit=0", "limit"), ("limit=501", "limit"), ("limit=-1", "limit"), ("limit=abc", "limit"),
        ("limit=1.5", "limit"), ("limit=", "limit"), ("offset=-1", "offset"), ("offset=x", "offset"),
        ("limit=99999999999999999999999", "limit"), ("state=RUNNING", "state"), ("state=active", "state"),
        ("include_deleted=maybe", "include_deleted"), ("colour=blue", "colour"), ("name=" + "x" * 64, "name"),
    ]
    for query, field in cases:
        body = assert_problem(a.get(f"/v1/vms?{query}"), 422, "validation-error")
        assert field in body["errors"], (query, body)
    for path in ("/v1/hosts?limit=0", "/v1/tenants?offset=-5", "/v1/operations?status=done", "/v1/audit?limit=x",
                 "/v1/flavors?limit=1000"):
        caller: Any = world.operator
        assert_problem(caller.get(path), 422, "validation-error")


def test_other_lists_share_the_envelope(world: World) -> None:
    _make(world, 1)
    for path in ("/v1/flavors", "/v1/operations", "/v1/audit", "/v1/tokens"):
        page = world.admin_a.get(f"{path}?limit=1").get_json()
        assert set(page) == {"items", "total", "limit", "offset"}, path
        assert page["limit"] == 1 and len(page["items"]) <= 1 and page["total"] >= len(page["items"])
    hosts = world.operator.get("/v1/hosts?limit=2&offset=1").get_json()
    assert hosts["total"] == 3 and [h["name"] for h in hosts["items"]] == ["hv2", "hv3"]
    assert world.operator.get("/v1/hosts?state=maintenance").get_json()["total"] == 0
