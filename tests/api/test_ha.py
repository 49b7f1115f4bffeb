"""Issue 16: high availability on the simulated data center (the libvirt lab proves it on real daemons).

A host is "killed" by switching it off in the simulator (calls fail, its guests keep "running", as after a
crash of its hypervisor daemon); its fence command is a real program that powers the simulated host off
(every guest stopped), as IPMI would.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from agents.simulated import open_datacenter
from tests.api.test_plans import skew
from tests.conftest import World, wait_for

DATACENTER = open_datacenter()
FENCE = [sys.executable, "-c",
         "import sys; from agents.simulated import open_datacenter; open_datacenter().power_off(sys.argv[1])"]


@pytest.fixture
def fast(settings_override: Callable[..., None]) -> None:
    settings_override(ha_grace_s=0.0)


def _patch(caller: Any, path: str, body: dict[str, Any]) -> Any:
    return caller.patch(path, json=body, headers={"If-Match": caller.get(path).headers["ETag"]})


def _kill(app: Any, *hosts: str) -> None:
    from controlplane.services import host_health

    for h in hosts:
        DATACENTER.set_up(h, False)
    with app.app_context():
        host_health.check_hosts()


def _ha_round(app: Any) -> dict[str, Any]:
    from controlplane.services import ha

    with app.app_context():
        return ha.check()


def _revive(app: Any, host: str) -> None:
    from controlplane.services import host_health

    DATACENTER.set_up(host, True)
    with app.app_context():
        host_health.check_hosts()


def _actions(app: Any) -> list[tuple[str, str]]:
    from controlplane.db import db
    from controlplane.models.audit import AuditEntry

    with app.app_context():
        rows = db.session.execute(select(AuditEntry.action, AuditEntry.target_id).order_by(AuditEntry.seq)).all()
        db.session.rollback()
    return [(a, t) for a, t in rows]


def _running() -> dict[str, list[str]]:
    """VM id -> the simulated hosts where a domain of it runs."""
    out: dict[str, list[str]] = {}
    with DATACENTER.read() as tx:
        for host in tx.host_names():
            for dom in tx.domains(host, running_only=True):
                out.setdefault(dom.vm_id, []).append(host)
    return out


def test_a_dead_host_is_fenced_and_its_vms_restart_elsewhere_by_priority(world: World, app: Any, fast: None) -> None:
    op = world.operator
    assert _patch(op, "/v1/hosts/hv1", {"fence_command": [*FENCE, "hv1"]}).status_code == 200
    a, b, c = skew(world, 3, host="hv1", flavor="small")
    assert _patch(op, f"/v1/vms/{b}", {"ha_priority": 5}).status_code == 200  # b restarts first
    assert _patch(op, f"/v1/vms/{c}", {"ha_enabled": False}).get_json()["ha_enabled"] is False
    assert _patch(op, f"/v1/tenants/{world.tenant_b}", {"ha_enabled": False}).status_code == 200
    r = op.post("/v1/vms", json={"name": "of-b", "flavor": "small", "host": "hv1", "tenant_id": world.tenant_b})
    d = r.get_json()["vm"]["id"]
    wait_for(lambda: op.get(f"/v1/vms/{d}").get_json()["state"] == "ACTIVE")

    _kill(app, "hv1")
    assert op.get("/v1/hosts/hv1").get_json()["state"] == "down"
    outcome = _ha_round(app)["hv1"]
    assert set(outcome["restarted"]) == {"skew-0", "skew-1"}, outcome
    assert outcome["left"] == {"skew-2": "high availability is off for this VM",
                               "of-b": "high availability is off for its municipality"}
    host = op.get("/v1/hosts/hv1").get_json()
    assert host["state"] == "down" and host["fenced_at"] and "fenced" in host["state_reason"]
    for vm_id in (a, b):
        got = wait_for(lambda vm_id=vm_id: (lambda v: v if v["state"] == "ACTIVE" else None)(
            op.get(f"/v1/vms/{vm_id}").get_json()), what=f"{vm_id} restarted")
        assert got["host_id"] != world.hosts["hv1"]
    for vm_id in (c, d):
        got = op.get(f"/v1/vms/{vm_id}").get_json()
        assert got["state"] == "STOPPED" and got["host_id"] == world.hosts["hv1"], got
    running = _running()  # the fence stopped hv1's guests: each VM runs once, on its new host
    assert {v: len(hs) for v, hs in running.items() if v in (a, b, c, d)} == {a: 1, b: 1}, running
    evacuated = [t for act, t in _actions(app) if act == "vm.evacuate"]
    assert evacuated == [b, a]  # by priority
    assert ("host.fence", world.hosts["hv1"]) in _actions(app)

    _revive(app, "hv1")  # it answers again: it rejoins without the VMs that run elsewhere now
    host = op.get("/v1/hosts/hv1").get_json()
    assert host["state"] == "enabled" and host["fenced_at"] is None, host
    assert set(DATACENTER.inventory()["hv1"]) == {c, d}
    assert all(op.get(f"/v1/vms/{v}").get_json()["state"] == "ACTIVE" for v in (a, b))
    assert ("host.rejoin", world.hosts["hv1"]) in _actions(app)


def test_a_fenced_host_enabled_by_hand_is_emptied_before_it_takes_vms(world: World, app: Any, fast: None) -> None:
    op = world.operator
    assert _patch(op, "/v1/hosts/hv1", {"fence_command": [*FENCE, "hv1"]}).status_code == 200
    (a,) = skew(world, 1, host="hv1", flavor="small")
    _kill(app, "hv1")
    assert set(_ha_round(app)["hv1"]["restarted"]) == {"skew-0"}
    wait_for(lambda: op.get(f"/v1/vms/{a}").get_json()["state"] == "ACTIVE")
    DATACENTER.set_up("hv1", True)  # the operator powers it on and enables it before any health check ran
    host = _patch(op, "/v1/hosts/hv1", {"state": "enabled"}).get_json()
    assert host["state"] == "pending" and host["fenced_at"] and "fenced" in host["state_reason"], host
    assert a in DATACENTER.inventory()["hv1"]  # the stale copy of the evacuated VM is still defined there
    _revive(app, "hv1")
    host = op.get("/v1/hosts/hv1").get_json()
    assert host["state"] == "enabled" and host["fenced_at"] is None, host
    assert a not in DATACENTER.inventory()["hv1"]
    assert op.get(f"/v1/vms/{a}").get_json()["host_id"] != world.hosts["hv1"]


def test_a_vm_on_the_dead_hosts_local_disk_stays_and_one_on_a_shared_pool_restarts(
        world: World, app: Any, fast: None, image_dirs: tuple[str, str]) -> None:
    from tests.api.test_storage_pools import image, pool, reach

    op = world.operator
    assert _patch(op, "/v1/hosts/hv1", {"fence_command": [*FENCE, "hv1"]}).status_code == 200
    image(world, image_dirs)
    pool(world, "local", kind="local")
    pool(world, "nfs-ha")
    reach(world, "hv1", ["nfs-ha"])
    reach(world, "hv2", ["nfs-ha"])
    made = {}
    for name, pool_name in (("on-local", "local"), ("on-nfs", "nfs-ha")):
        r = op.post("/v1/vms", json={"name": name, "flavor": "small", "image": "base", "pool": pool_name,
                                     "tenant_id": world.tenant_a, "host": "hv1"})
        assert r.status_code == 202, r.get_json()
        assert op.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"
        made[name] = r.get_json()["vm"]["id"]
    _kill(app, "hv1")
    outcome = _ha_round(app)["hv1"]
    assert outcome["restarted"] == {"on-nfs": "hv2"}, outcome  # the only other host that reaches its pool
    assert outcome["left"] == {"on-local": "its disk is on the failed host's local storage"}
    local = op.get(f"/v1/vms/{made['on-local']}").get_json()
    assert local["state"] == "STOPPED" and local["host_id"] == world.hosts["hv1"], local
    assert "local storage" in local["status_reason"]
    moved = wait_for(lambda: (lambda v: v if v["state"] == "ACTIVE" else None)(
        op.get(f"/v1/vms/{made['on-nfs']}").get_json()), what="on-nfs restarted")
    assert moved["host_id"] == world.hosts["hv2"]


def test_no_fencing_means_no_restart_whatever_the_vms_say(world: World, app: Any, fast: None) -> None:
    op = world.operator
    assert _patch(op, "/v1/hosts/hv2", {"fence_command": ["false"]}).status_code == 200
    on2 = skew(world, 1, host="hv2", flavor="small")[0]
    on3 = skew(world, 1, host="hv3", flavor="small")[0]  # hv3 has no fence command at all
    _kill(app, "hv2", "hv3")
    for _ in range(2):  # every round tries again; the failure is audited once
        outcome = _ha_round(app)
        assert "exit status 1" in outcome["hv2"] and "no fence_command" in outcome["hv3"], outcome
    for vm_id, host in ((on2, "hv2"), (on3, "hv3")):
        got = op.get(f"/v1/vms/{vm_id}").get_json()
        assert got["state"] == "ACTIVE" and got["host_id"] == world.hosts[host], got
        assert "not fenced" in op.get(f"/v1/hosts/{host}").get_json()["state_reason"]
    assert [a for a, _ in _actions(app)].count("host.fence.failed") == 2  # one per host
    assert world.operator.get("/v1/operations?kind=vm.evacuate").get_json()["total"] == 0
    _revive(app, "hv2")
    assert op.get("/v1/hosts/hv2").get_json()["state"] == "enabled"
    assert op.get(f"/v1/vms/{on2}").get_json()["host_id"] == world.hosts["hv2"]


def test_vms_no_host_can_take_are_reported_with_the_reason(world: World, app: Any, fast: None) -> None:
    op = world.operator
    assert _patch(op, "/v1/hosts/hv1", {"fence_command": [*FENCE, "hv1"]}).status_code == 200
    vm = skew(world, 1, host="hv1", flavor="small")[0]
    for h in ("hv2", "hv3"):
        assert op.post(f"/v1/hosts/{h}/maintenance", json={"enabled": True}).status_code == 200
    _kill(app, "hv1")
    left = _ha_round(app)["hv1"]["left"]
    assert left["skew-0"].startswith("no host can take it") and "maintenance" in left["skew-0"], left
    got = op.get(f"/v1/vms/{vm}").get_json()
    assert got["state"] == "STOPPED" and got["host_id"] == world.hosts["hv1"] and "no host" in got["status_reason"]


def test_bad_ha_settings_are_refused_and_change_nothing(world: World) -> None:
    op = world.operator
    before = op.get("/v1/hosts/hv1").headers["ETag"]
    for bad in ([], "ipmitool power off", [""], [1, 2], ["x" * 501]):
        r = _patch(op, "/v1/hosts/hv1", {"fence_command": bad})
        assert r.status_code == 422 and "fence_command" in r.get_json()["errors"], (bad, r.get_json())
    assert op.get("/v1/hosts/hv1").headers["ETag"] == before
    vm = skew(world, 1, host="hv1", flavor="small")[0]
    assert _patch(op, f"/v1/vms/{vm}", {"ha_priority": -1}).status_code == 422
    assert _patch(op, f"/v1/vms/{vm}", {"ha_enabled": "maybe"}).status_code == 422
    r = _patch(world.admin_a, f"/v1/vms/{vm}", {"ha_enabled": False})
    assert r.status_code == 403 and r.headers["Content-Type"] == "application/problem+json"
    assert op.get(f"/v1/vms/{vm}").get_json()["ha_enabled"] is True
