"""Quota, capacity and build faults: clear problem documents, nothing claimed, quota returned (issue 2)."""

from __future__ import annotations

from typing import Any

from agents.simulated import open_datacenter
from tests.api.test_errors_common import assert_problem, db_state, sim_domains
from tests.conftest import Caller, World, wait_for

DATACENTER = open_datacenter()  # the test session's store (tests/conftest.py sets CONFLUENCIA_SIM_STATE)


def _vm(c: Caller, name: str, **size: Any) -> dict[str, Any]:
    r = c.post("/v1/vms", json={"name": name, **(size or {"flavor": "medium"})})
    assert r.status_code == 202, r.get_json()
    assert c.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"
    return dict(r.get_json()["vm"])


def _hosts(world: World) -> dict[str, Any]:
    return {h["name"]: h["usage"] for h in world.operator.get("/v1/hosts").get_json()["items"]}


def test_quota_exceeded_names_the_resource_and_what_is_left(world: World, app: Any) -> None:
    b = world.admin_b  # quota: 8 vCPU, 8192 MiB, 100 GiB, 4 VMs
    _vm(b, "b1")  # medium: 2 vCPU, 4096 MiB, 40 GiB
    quota_before = b.get("/v1/quota").get_json()
    before, domains, hosts = db_state(app), sim_domains(), _hosts(world)

    r = b.post("/v1/vms", json={"name": "big", "vcpus": 7, "ram_mib": 1024, "disk_gib": 10})
    body = assert_problem(r, 403, "quota-exceeded")
    assert body["quota"] == {"vcpus": {"limit": 8, "used": 2, "requested": 7, "available": 6}}
    assert "vCPU" in body["detail"] and "requested 7" in body["detail"] and "6 left of 8" in body["detail"]
    assert "Municipio B" in body["detail"]

    r = b.post("/v1/vms", json={"name": "big", "vcpus": 8, "ram_mib": 8192, "disk_gib": 70},
               headers={"Accept-Language": "es"})
    body = assert_problem(r, 403, "quota-exceeded")
    assert set(body["quota"]) == {"vcpus", "ram_mib", "disk_gib"}
    assert body["quota"]["ram_mib"] == {"limit": 8192, "used": 4096, "requested": 8192, "available": 4096}
    assert body["quota"]["disk_gib"]["available"] == 60
    assert body["title"] == "Cuota excedida"
    assert "quedan 4096 MiB de 8192 MiB" in body["detail"] and "disco" in body["detail"]

    assert db_state(app) == before and sim_domains() == domains and _hosts(world) == hosts
    assert b.get("/v1/quota").get_json() == quota_before


def test_vm_count_quota(world: World, app: Any) -> None:
    b = world.admin_b
    for i in range(4):
        _vm(b, f"tiny-{i}", vcpus=1, ram_mib=64, disk_gib=1)
    before = db_state(app)
    body = assert_problem(b.post("/v1/vms", json={"name": "fifth", "vcpus": 1, "ram_mib": 64, "disk_gib": 1}),
                          403, "quota-exceeded")
    assert body["quota"] == {"vms": {"limit": 4, "used": 4, "requested": 1, "available": 0}}
    assert "0 left of 4" in body["detail"]
    assert db_state(app) == before


def test_no_host_has_room_is_409_with_reasons_and_claims_nothing(world: World, app: Any) -> None:
    op = world.operator
    hv3 = op.get(f"/v1/hosts/{world.hosts['hv3']}")
    r = op.patch(f"/v1/hosts/{world.hosts['hv3']}", json={"state": "maintenance"},
                 headers={"If-Match": hv3.headers["ETag"]})
    assert r.status_code == 200, r.get_json()
    a = world.admin_a
    _vm(a, "existing")
    before, domains, hosts = db_state(app), sim_domains(), _hosts(world)
    quota = a.get("/v1/quota").get_json()

    # 70000 MiB is within A's quota (81920) but more than hv1/hv2 have (65536); hv3 is in maintenance
    r = a.post("/v1/vms", json={"name": "huge", "vcpus": 4, "ram_mib": 70000, "disk_gib": 10})
    body = assert_problem(r, 409, "insufficient-capacity")
    # reasons count the hosts per rejection reason (like "0/3 nodes are available: ...")
    assert body["reasons"] == {"not enough RAM": 2, "in maintenance": 1}, body
    assert "2 hosts: not enough RAM" in body["detail"] and "1 host: in maintenance" in body["detail"]
    assert "70000 MiB" in body["detail"]

    assert db_state(app) == before and sim_domains() == domains and _hosts(world) == hosts
    assert a.get("/v1/quota").get_json() == quota


def test_operator_host_override_without_room_is_refused(world: World, app: Any) -> None:
    op = world.operator
    before = db_state(app)
    r = op.post("/v1/vms", json={"name": "x", "vcpus": 1, "ram_mib": 70000, "disk_gib": 1,
                                 "tenant_id": world.tenant_a, "host": "hv1"})
    assert_problem(r, 409)
    r = op.post("/v1/vms", json={"name": "x", "flavor": "small", "tenant_id": world.tenant_a, "host": "nope"})
    body = assert_problem(r, 422, "validation-error")
    assert list(body["errors"]) == ["host"]
    r = op.post("/v1/vms", json={"name": "x", "flavor": "small"})
    assert list(assert_problem(r, 422, "validation-error")["errors"]) == ["tenant_id"]
    assert db_state(app) == before


def test_deleting_a_building_vm_cancels_the_build(world: World, app: Any) -> None:
    """Issue 12: a VM still being built can be deleted; the build steps aside and leaves nothing behind."""
    a = world.admin_a
    quota_before = a.get("/v1/quota").get_json()
    DATACENTER.set_delay_scale(4.0)  # a create takes 2 s: long enough to act while the VM is BUILDING
    try:
        r = a.post("/v1/vms", json={"name": "slow", "flavor": "small"})
        assert r.status_code == 202
        vm_id, op_id = r.get_json()["vm"]["id"], r.get_json()["operation_id"]
        wait_for(lambda: a.get(f"/v1/vms/{vm_id}").get_json()["state"] == "BUILDING", timeout=5)
        d = a.delete(f"/v1/vms/{vm_id}")
        assert d.status_code == 202 and d.get_json()["kind"] == "vm.delete", d.get_json()
        assert a.get(f"/v1/vms/{vm_id}").get_json()["state"] == "DELETING"
    finally:
        DATACENTER.set_delay_scale(0.0)
    assert a.wait_op(d.get_json()["id"])["status"] == "succeeded"
    create = a.wait_op(op_id)
    assert create["status"] == "failed" and "cancelled" in create["error"], create
    assert a.get(f"/v1/vms/{vm_id}").get_json()["state"] == "DELETED"
    assert all(vm_id not in names for names in sim_domains().values())  # the build left nothing
    assert a.get("/v1/quota").get_json() == quota_before
    actions = [e["action"] for e in reversed(a.get(f"/v1/audit?target_id={vm_id}").get_json()["items"])]
    assert actions == ["vm.create", "vm.delete", "vm.delete.succeeded"]


def test_deleting_a_migrating_vm_is_409_and_changes_nothing(world: World, app: Any) -> None:
    a = world.admin_a
    vm = _vm(a, "moving")
    from controlplane.db import db
    from controlplane.models import VM

    with app.app_context():
        row = db.session.get(VM, vm["id"])
        row.state = "MIGRATING"
        db.session.commit()
    before = db_state(app)
    body = assert_problem(a.delete(f"/v1/vms/{vm['id']}"), 409, "invalid-state")
    assert "moving" in body["detail"] and body["state"] == "MIGRATING"
    assert db_state(app) == before


def test_driver_failure_during_create_releases_claim_and_returns_quota(world: World, app: Any) -> None:
    a = world.admin_a
    kept = _vm(a, "kept")
    quota_before = a.get("/v1/quota").get_json()
    hosts_before = _hosts(world)
    # a permanent failure on every host: each attempt is rescheduled to another host (3 attempts in all),
    # then the VM ends in ERROR with the reason
    for host in ("hv1", "hv2", "hv3"):
        DATACENTER.inject_failure(host, "create", kind="failed", times=5)
    r = a.post("/v1/vms", json={"name": "doomed", "flavor": "medium"})
    assert r.status_code == 202
    vm_id = r.get_json()["vm"]["id"]
    op = a.wait_op(r.get_json()["operation_id"])
    assert op["status"] == "failed" and "injected failed failure of create" in op["error"]
    vm = a.get(f"/v1/vms/{vm_id}").get_json()
    assert vm["state"] == "ERROR" and vm["host_id"] is None
    assert vm["status_reason"].startswith("build failed: DriverError")
    assert a.get("/v1/quota").get_json() == quota_before
    assert _hosts(world) == hosts_before
    assert sim_domains() == {h: ([kept["id"]] if world.hosts[h] == kept["host_id"] else [])
                             for h in ("hv1", "hv2", "hv3")}
    actions = [e["action"] for e in reversed(a.get(f"/v1/audit?target_id={vm_id}").get_json()["items"])]
    assert actions == ["vm.create", "vm.reschedule", "vm.reschedule", "vm.build.failed"]
    failed = a.get(f"/v1/audit?target_id={vm_id}&action=vm.build.failed").get_json()["items"][0]
    assert failed["after"]["state"] == "ERROR" and failed["after"]["host_id"] is None
