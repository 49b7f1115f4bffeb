"""The walking skeleton end to end: API -> claim -> Celery (embedded worker) -> simulated hypervisor."""

from __future__ import annotations

from agents.simulated import open_datacenter
from tests.conftest import World, wait_for

DATACENTER = open_datacenter()  # the test session's store (tests/conftest.py sets CONFLUENCIA_SIM_STATE)


def _domains(host: str) -> dict[str, str]:
    from agents import open_driver

    return {d.vm_id: d.state.value for d in open_driver("simulated", f"sim://{host}").list_domains()}


def test_create_watch_list_stop_start_delete(world: World) -> None:
    c = world.admin_a
    r = c.post("/v1/vms", json={"name": "web-01", "flavor": "medium"})
    assert r.status_code == 202, r.get_json()
    body = r.get_json()
    vm_id, op_id = body["vm"]["id"], body["operation_id"]
    assert body["vm"]["state"] == "PENDING"
    assert r.headers["Location"] == f"/v1/operations/{op_id}"
    assert r.headers["ETag"] == '"1"'

    op = c.wait_op(op_id)
    assert op["status"] == "succeeded", op
    vm = c.get(f"/v1/vms/{vm_id}").get_json()
    assert vm["state"] == "ACTIVE" and vm["launched_at"]
    host_name = next(n for n, i in world.hosts.items() if i == vm["host_id"])
    assert _domains(host_name) == {vm_id: "running"}

    listed = c.get("/v1/vms").get_json()
    assert [v["id"] for v in listed["items"]] == [vm_id] and listed["total"] == 1

    quota = c.get("/v1/quota").get_json()
    assert quota["vcpus"]["used"] == 2 and quota["ram_mib"]["used"] == 4096 and quota["vms"]["used"] == 1

    op = c.wait_op(c.post(f"/v1/vms/{vm_id}/stop").get_json()["id"])
    assert op["status"] == "succeeded"
    assert c.get(f"/v1/vms/{vm_id}").get_json()["state"] == "STOPPED"
    assert _domains(host_name) == {vm_id: "stopped"}
    op = c.wait_op(c.post(f"/v1/vms/{vm_id}/start").get_json()["id"])
    assert c.get(f"/v1/vms/{vm_id}").get_json()["state"] == "ACTIVE"

    r = c.delete(f"/v1/vms/{vm_id}")
    assert r.status_code == 202
    assert c.wait_op(r.get_json()["id"])["status"] == "succeeded"
    assert c.get(f"/v1/vms/{vm_id}").get_json()["state"] == "DELETED"
    assert _domains(host_name) == {}
    assert c.get("/v1/vms").get_json()["total"] == 0
    assert c.get("/v1/vms?include_deleted=true").get_json()["total"] == 1
    assert c.get("/v1/quota").get_json()["vms"]["used"] == 0


def test_every_state_change_is_audited_and_chained(world: World, app) -> None:
    c = world.admin_a
    vm_id = c.post("/v1/vms", json={"name": "db-01", "flavor": "small"}, headers={"X-Request-ID": "req-42"}
                   ).get_json()["vm"]["id"]
    wait_for(lambda: c.get(f"/v1/vms/{vm_id}").get_json()["state"] == "ACTIVE")
    c.wait_op(c.delete(f"/v1/vms/{vm_id}").get_json()["id"])
    entries = c.get(f"/v1/audit?target_id={vm_id}").get_json()["items"]
    actions = [e["action"] for e in reversed(entries)]
    assert actions == ["vm.create", "vm.build.succeeded", "vm.delete", "vm.delete.succeeded"]
    first = entries[-1]
    assert first["actor_name"] == "admin-a" and first["request_id"] == "req-42"
    assert first["after"]["name"] == "db-01"
    # tenant B sees none of it
    assert world.admin_b.get(f"/v1/audit?target_id={vm_id}").get_json()["total"] == 0

    from sqlalchemy import select

    from controlplane.core.audit import verify_chain
    from controlplane.db import db
    from controlplane.models import AuditEntry

    assert "seq" not in first and "prev_hash" not in first  # a municipality sees its own numbering only
    with app.app_context():
        assert verify_chain().ok
        entry = db.session.execute(select(AuditEntry).where(AuditEntry.target_id == vm_id,
                                                            AuditEntry.action == "vm.create")).scalar_one()
        entry.after = {**entry.after, "name": "tampered"}
        db.session.commit()
        report = verify_chain()
        assert not report.ok and report.first_bad_seq == entry.seq


def test_placement_spreads_vms_evenly(world: World) -> None:
    c = world.admin_a
    ids = [c.post("/v1/vms", json={"name": f"vm-{i}", "flavor": "medium"}).get_json()["vm"]["id"] for i in range(8)]
    for vm_id in ids:
        wait_for(lambda vm_id=vm_id: c.get(f"/v1/vms/{vm_id}").get_json()["state"] == "ACTIVE")
    hosts = world.operator.get("/v1/hosts").get_json()["items"]
    ram = {h["name"]: h["usage"]["utilisation"]["ram_mib"] for h in hosts}
    # hv3 is twice as large: balanced means equal utilisation, so it gets about twice the VMs
    assert max(ram.values()) - min(ram.values()) <= 4096 / 65536 + 1e-9, ram
    assert sum(h["usage"]["vms"] for h in hosts) == 8
    assert {h: len(_domains(h)) for h in ("hv1", "hv2", "hv3")} == {h["name"]: h["usage"]["vms"] for h in hosts}


def test_anti_affinity_group_never_shares_a_host(world: World) -> None:
    c = world.admin_a
    vms = [c.post("/v1/vms", json={"name": f"ha-{i}", "flavor": "small", "anti_affinity_group": "ha"})
           for i in range(3)]
    assert [r.status_code for r in vms] == [202, 202, 202]
    assert len({r.get_json()["vm"]["host_id"] for r in vms}) == 3
    r = c.post("/v1/vms", json={"name": "ha-3", "flavor": "small", "anti_affinity_group": "ha"})
    assert r.status_code == 409
    assert r.get_json()["type"] == "/problems/insufficient-capacity"
    assert "anti-affinity" in r.get_json()["detail"].lower()
    # another municipality may use the same group name independently
    assert world.admin_b.post("/v1/vms", json={"name": "ha-0", "flavor": "small",
                                               "anti_affinity_group": "ha"}).status_code == 202


def test_driver_failure_reschedules_to_another_host(world: World) -> None:
    c = world.admin_a
    # on an empty cluster the largest host (hv3) keeps the spread smallest, so the first claim is hv3
    DATACENTER.inject_failure("hv3", "create", kind="failed", times=1)
    r = c.post("/v1/vms", json={"name": "retry", "flavor": "small"})
    assert r.get_json()["vm"]["host_id"] == world.hosts["hv3"]
    op = c.wait_op(r.get_json()["operation_id"])
    vm_id = r.get_json()["vm"]["id"]
    vm = c.get(f"/v1/vms/{vm_id}").get_json()
    assert op["status"] == "succeeded" and vm["state"] == "ACTIVE"
    assert vm["host_id"] in (world.hosts["hv1"], world.hosts["hv2"])
    actions = [e["action"] for e in reversed(c.get(f"/v1/audit?target_id={vm_id}").get_json()["items"])]
    assert actions == ["vm.create", "vm.reschedule", "vm.build.succeeded"]
    assert _domains("hv3") == {}  # nothing left behind on the failed host
    hosts = {h["name"]: h["usage"]["vms"] for h in world.operator.get("/v1/hosts").get_json()["items"]}
    assert sum(hosts.values()) == 1 and hosts["hv3"] == 0


def test_driver_failure_everywhere_ends_in_error_and_returns_quota(world: World) -> None:
    c = world.admin_a
    for host in ("hv1", "hv2", "hv3"):
        DATACENTER.inject_failure(host, "create", kind="failed", times=5)
    r = c.post("/v1/vms", json={"name": "doomed", "flavor": "medium"})
    assert r.status_code == 202
    op = c.wait_op(r.get_json()["operation_id"])
    assert op["status"] == "failed" and "DriverError" in op["error"], op
    vm = c.get(f"/v1/vms/{r.get_json()['vm']['id']}").get_json()
    assert vm["state"] == "ERROR" and vm["host_id"] is None
    assert "build failed" in vm["status_reason"]
    quota = c.get("/v1/quota").get_json()
    assert quota["vms"]["used"] == 0 and quota["vcpus"]["used"] == 0
    hosts = world.operator.get("/v1/hosts").get_json()["items"]
    assert all(h["usage"]["vms"] == 0 for h in hosts)
    assert all(not _domains(h) for h in ("hv1", "hv2", "hv3"))
    # an ERROR VM can be deleted
    assert c.wait_op(c.delete(f"/v1/vms/{vm['id']}").get_json()["id"])["status"] == "succeeded"
