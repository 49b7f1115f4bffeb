"""The running totals of claims (per host, per municipality) follow every change of a VM, equal a recount
from the VMs after a whole life cycle, and a drift is found and repaired."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from agents.simulated import open_datacenter
from tests.conftest import World

DATACENTER = open_datacenter()  # the test session's store (tests/conftest.py sets CONFLUENCIA_SIM_STATE)


def _drift(app: Any, fix: bool = False) -> dict[str, Any]:
    from controlplane.core import capacity
    from controlplane.db import db

    with app.app_context():
        found = capacity.drift(fix=fix)
        db.session.commit()
        return found


def test_totals_follow_create_reschedule_migrate_stop_and_delete(world: World, app: Any) -> None:
    a, op = world.admin_a, world.operator
    DATACENTER.inject_failure("hv3", "create", kind="failed", times=1)  # the first build is rescheduled
    vms = []
    for i in range(4):
        r = a.post("/v1/vms", json={"name": f"t{i}", "flavor": "medium"})
        assert a.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"
        vms.append(r.get_json()["vm"]["id"])
    assert _drift(app) == {"hosts": {}, "tenants": {}, "pools": {}}
    vm = a.get(f"/v1/vms/{vms[0]}").get_json()
    target = next(h for h in world.hosts.values() if h != vm["host_id"])
    assert op.wait_op(op.post(f"/v1/vms/{vms[0]}/migrate", json={"host": target}).get_json()["id"])["status"] == \
        "succeeded"
    assert a.wait_op(a.post(f"/v1/vms/{vms[1]}/stop").get_json()["id"])["status"] == "succeeded"
    for vm_id in vms[2:]:
        assert a.wait_op(a.delete(f"/v1/vms/{vm_id}").get_json()["id"])["status"] == "succeeded"
    assert _drift(app) == {"hosts": {}, "tenants": {}, "pools": {}}
    quota = a.get("/v1/quota").get_json()
    assert quota["vms"]["used"] == 2 and quota["ram_mib"]["used"] == 2 * 4096
    usage = {h["id"]: h["usage"]["allocated"]["ram_mib"] for h in op.get("/v1/hosts").get_json()["items"]}
    assert sum(usage.values()) == 2 * 4096 and usage[target] >= 4096


def test_a_drift_is_found_and_repaired(world: World, app: Any) -> None:
    from controlplane.db import db
    from controlplane.models import HostAllocation

    a = world.admin_a
    r = a.post("/v1/vms", json={"name": "d", "flavor": "small"})
    a.wait_op(r.get_json()["operation_id"])
    host_id = r.get_json()["vm"]["host_id"]
    with app.app_context():
        db.session.execute(update(HostAllocation).where(HostAllocation.host_id == host_id)
                           .values(ram_mib=HostAllocation.ram_mib + 999))
        db.session.commit()
    dry = world.operator.post("/v1/reconcile?dry_run=true").get_json()
    found = dry["totals"]["hosts"][host_id]
    assert found["stored"]["ram_mib"] == found["counted"]["ram_mib"] + 999 and not dry["clean"]
    assert _drift(app)["hosts"] == {host_id: found}  # a dry run changes nothing
    fixed = world.operator.post("/v1/reconcile").get_json()
    assert fixed["totals"]["hosts"] == {host_id: found}
    assert _drift(app) == {"hosts": {}, "tenants": {}, "pools": {}}
    assert world.operator.post("/v1/reconcile?dry_run=true").get_json()["clean"]
    actions = [e["action"] for e in world.operator.get("/v1/audit?action=reconcile.").get_json()["items"]]
    assert actions == ["reconcile.totals"]
