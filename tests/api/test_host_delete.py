"""Deleting a host: allowed for a host nothing ever referred to; a host that holds VMs, or that appears in
the history of VMs or plans (drained once, source of a migration), is refused with 409 problem+json. A host
that had been drained once used to give a 500 (the plan's foreign key), found by schemathesis."""

from __future__ import annotations

from tests.api.test_errors_common import assert_problem
from tests.conftest import World, wait_for

NEW_HOST = {"name": "hv9", "driver": "simulated", "uri": "sim://hv9", "vcpus": 4, "ram_mib": 4096, "disk_gib": 40}


def test_a_host_nothing_refers_to_is_deleted(world: World) -> None:
    op = world.operator
    host = op.post("/v1/hosts", json=NEW_HOST).get_json()["id"]
    r = op.delete(f"/v1/hosts/{host}")  # (no If-Match: its first health check may have changed it already)
    assert r.status_code == 204, r.get_data(as_text=True)
    assert_problem(op.get(f"/v1/hosts/{host}"), 404, "not-found")


def test_a_host_that_was_drained_once_is_kept_with_409(world: World) -> None:
    op, host = world.operator, world.hosts["hv3"]
    assert op.post(f"/v1/hosts/{host}/maintenance", json={"enabled": True}).status_code == 200
    plan = op.get("/v1/plans?kind=drain").get_json()["items"][0]
    assert plan["host_id"] == host
    wait_for(lambda: op.get(f"/v1/plans/{plan['id']}").get_json()["status"] in ("succeeded", "failed"),
             what="the drain of an empty host")
    assert op.post(f"/v1/hosts/{host}/maintenance", json={"enabled": False}).status_code == 200
    assert op.get(f"/v1/hosts/{host}").get_json()["usage"]["vms"] == 0
    for lang, words in (("en", "history of VMs or plans"), ("es", "historial de VMs o de planes")):
        body = assert_problem(op.delete(f"/v1/hosts/{host}", headers={"Accept-Language": lang}), 409, "conflict")
        assert words in body["detail"], body
    assert op.get(f"/v1/hosts/{host}").status_code == 200
    assert op.get(f"/v1/plans/{plan['id']}").get_json()["host_id"] == host


def test_the_source_of_a_migration_is_kept_with_409(world: World) -> None:
    op = world.operator
    r = op.post("/v1/vms", json={"name": "mover", "flavor": "small", "tenant_id": world.tenant_a, "host": "hv1"})
    assert op.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"
    vm = r.get_json()["vm"]["id"]
    assert op.wait_op(op.post(f"/v1/vms/{vm}/migrate", json={"host": "hv2"}).get_json()["id"])["status"] \
        == "succeeded"
    assert op.get(f"/v1/hosts/{world.hosts['hv1']}").get_json()["usage"]["vms"] == 0
    body = assert_problem(op.delete(f"/v1/hosts/{world.hosts['hv1']}"), 409, "conflict")
    assert "history" in body["detail"]
    body = assert_problem(op.delete(f"/v1/hosts/{world.hosts['hv2']}"), 409, "conflict")
    assert "still has VMs" in body["detail"]
