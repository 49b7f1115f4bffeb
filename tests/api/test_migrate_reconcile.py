"""Operator live migration and reconcile, on the simulated data center."""

from __future__ import annotations

from agents import open_driver
from agents.base import VMSpec
from agents.simulated import open_datacenter
from tests.conftest import World, wait_for
from tests.contract.sim_peer import Peer

DATACENTER = open_datacenter()  # the test session's store (tests/conftest.py sets CONFLUENCIA_SIM_STATE)


def _on(host: str) -> set[str]:
    return {d.vm_id for d in open_driver("simulated", f"sim://{host}").list_domains()}


def _active_vm(world: World, name: str = "app", **extra) -> dict:
    r = world.admin_a.post("/v1/vms", json={"name": name, "flavor": "small", **extra})
    assert world.admin_a.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"
    return world.admin_a.get(f"/v1/vms/{r.get_json()['vm']['id']}").get_json()


def _host_name(world: World, host_id: str) -> str:
    return next(n for n, i in world.hosts.items() if i == host_id)


def test_operator_migrates_a_vm_and_the_claim_follows(world: World) -> None:
    vm = _active_vm(world)
    src = _host_name(world, vm["host_id"])
    dst = "hv1" if src != "hv1" else "hv2"
    r = world.operator.post(f"/v1/vms/{vm['id']}/migrate", json={"host": dst})
    assert r.status_code == 202, r.get_json()
    assert world.operator.wait_op(r.get_json()["id"])["status"] == "succeeded"
    after = world.operator.get(f"/v1/vms/{vm['id']}").get_json()
    assert after["state"] == "ACTIVE" and after["host_id"] == world.hosts[dst]
    assert vm["id"] in _on(dst) and vm["id"] not in _on(src)
    usage = {h["name"]: h["usage"]["vms"] for h in world.operator.get("/v1/hosts").get_json()["items"]}
    assert usage[dst] == 1 and usage[src] == 0


def test_migration_requests_that_cannot_work_are_refused(world: World) -> None:
    vm = _active_vm(world)
    src = _host_name(world, vm["host_id"])
    assert world.admin_a.post(f"/v1/vms/{vm['id']}/migrate", json={"host": "hv1"}).status_code == 403
    same = world.operator.post(f"/v1/vms/{vm['id']}/migrate", json={"host": src})
    assert same.status_code == 409 and same.get_json()["type"] == "/problems/invalid-state"
    unknown = world.operator.post(f"/v1/vms/{vm['id']}/migrate", json={"host": "nope"})
    assert unknown.status_code == 422
    assert world.operator.get(f"/v1/vms/{vm['id']}").get_json()["state"] == "ACTIVE"


def test_failed_migration_records_where_the_vm_really_is(world: World) -> None:
    vm = _active_vm(world)
    src = _host_name(world, vm["host_id"])
    dst = "hv1" if src != "hv1" else "hv2"
    DATACENTER.inject_failure(src, "migrate", kind="failed", times=1)
    r = world.operator.post(f"/v1/vms/{vm['id']}/migrate", json={"host": dst})
    op = world.operator.wait_op(r.get_json()["id"])
    assert op["status"] == "failed" and "DriverError" in op["error"]
    after = world.operator.get(f"/v1/vms/{vm['id']}").get_json()
    assert after["state"] == "ACTIVE" and after["host_id"] == world.hosts[src]
    assert "migration failed" in after["status_reason"]
    assert vm["id"] in _on(src) and vm["id"] not in _on(dst)
    usage = {h["name"]: h["usage"]["vms"] for h in world.operator.get("/v1/hosts").get_json()["items"]}
    assert usage[dst] == 0  # the target claim was released


def test_a_migration_whose_target_went_away_while_it_waited_fails_with_the_reason(world: World) -> None:
    """The executor runs one plan at a time: a migration waits behind another one; its target is disabled
    meanwhile. The move is skipped when its turn comes, and the operation says the migration did not run."""
    first, second = _active_vm(world, "first"), _active_vm(world, "second")
    dst = next(n for n in ("hv1", "hv2", "hv3") if world.hosts[n] != first["host_id"])
    target = next(n for n in ("hv1", "hv2", "hv3") if world.hosts[n] not in (second["host_id"], world.hosts[dst]))
    DATACENTER.set_delay_scale(1.0)  # the first migration takes about a second
    try:
        ahead = world.operator.post(f"/v1/vms/{first['id']}/migrate", json={"host": dst}).get_json()
        wait_for(lambda: world.operator.get(f"/v1/vms/{first['id']}").get_json()["state"] == "MIGRATING")
        waiting = world.operator.post(f"/v1/vms/{second['id']}/migrate", json={"host": target})
        assert waiting.status_code == 202, waiting.get_json()
        etag = world.operator.get(f"/v1/hosts/{world.hosts[target]}").headers["ETag"]
        r = world.operator.patch(f"/v1/hosts/{world.hosts[target]}", headers={"If-Match": etag},
                                 json={"state": "disabled", "state_reason": "firmware"})
        assert r.status_code == 200, r.get_json()
        op = world.operator.wait_op(waiting.get_json()["id"])
        assert world.operator.wait_op(ahead["id"])["status"] == "succeeded"
    finally:
        DATACENTER.set_delay_scale(0.0)
    assert op["status"] == "failed" and f"{second['id']}: Host {target} is disabled" in op["error"], op
    plan = next(p for p in world.operator.get("/v1/plans?kind=migrate").get_json()["items"]
                if p["operation_id"] == op["id"])
    assert plan["status"] == "failed" and plan["reason"] == "the migration did not run", plan
    after = world.operator.get(f"/v1/vms/{second['id']}").get_json()
    assert after["state"] == "ACTIVE" and after["host_id"] == second["host_id"]
    assert second["id"] in _on(_host_name(world, second["host_id"])) and second["id"] not in _on(target)


def test_reconcile_reports_and_fixes_drift(world: World) -> None:
    moved = _active_vm(world, "moved")
    stopped = _active_vm(world, "stopped-behind-our-back")
    gone = _active_vm(world, "gone")
    for host in ("hv1", "hv2", "hv3"):
        DATACENTER.add_host(host)
    # drift made by hand, behind Confluencia's back
    src = _host_name(world, moved["host_id"])
    dst = "hv1" if src != "hv1" else "hv2"
    open_driver("simulated", f"sim://{src}").migrate(moved["id"], open_driver("simulated", f"sim://{dst}"))
    open_driver("simulated", f"sim://{_host_name(world, stopped['host_id'])}").stop(stopped["id"])
    open_driver("simulated", f"sim://{_host_name(world, gone['host_id'])}").delete(gone["id"])
    DATACENTER.add_foreign_domain("hv3", "legacy-mail")

    dry = world.operator.post("/v1/reconcile?dry_run=true").get_json()
    assert dry["moved"] == [{"vm": moved["id"], "from": src, "to": dst}]
    assert dry["state_fixed"] == [{"vm": stopped["id"], "from": "ACTIVE", "to": "STOPPED"}]
    assert dry["missing"] == [{"vm": gone["id"], "host": _host_name(world, gone["host_id"])}]
    assert {"host": "hv3", "domain": "legacy-mail"} in dry["unknown_domains"]
    assert world.operator.get(f"/v1/vms/{moved['id']}").get_json()["host_id"] == moved["host_id"]  # dry run

    report = world.operator.post("/v1/reconcile").get_json()
    assert not report["clean"]
    assert world.operator.get(f"/v1/vms/{moved['id']}").get_json()["host_id"] == world.hosts[dst]
    assert world.operator.get(f"/v1/vms/{stopped['id']}").get_json()["state"] == "STOPPED"
    gone_now = world.operator.get(f"/v1/vms/{gone['id']}").get_json()
    assert gone_now["state"] == "ERROR" and "missing" in gone_now["status_reason"]
    again = world.operator.post("/v1/reconcile").get_json()
    assert again["moved"] == again["state_fixed"] == again["missing"] == []
    assert sorted(a["action"] for a in world.operator.get("/v1/audit?action=reconcile").get_json()["items"]) == [
        "reconcile.missing", "reconcile.moved", "reconcile.state"]
    assert world.member_a.post("/v1/reconcile").status_code == 403


def test_reconcile_removes_the_domain_of_a_deleted_vm(world: World) -> None:
    vm = _active_vm(world)
    host = _host_name(world, vm["host_id"])
    world.admin_a.wait_op(world.admin_a.delete(f"/v1/vms/{vm['id']}").get_json()["id"])
    # the hypervisor comes back with the domain (e.g. restored from a snapshot)
    drv = open_driver("simulated", f"sim://{host}")
    drv.create(VMSpec(vm_id=vm["id"], name="app", vcpus=1, ram_mib=1024, disk_gib=10, tenant_id=vm["tenant_id"]))
    report = world.operator.post("/v1/reconcile").get_json()
    assert report["removed"] == [{"host": host, "domain": vm["id"], "why": "VM was deleted"}]
    assert vm["id"] not in _on(host)


def _active_on(world: World, host: str, name: str) -> str:
    """A VM the operator placed on ``host``; its id once it is ACTIVE."""
    r = world.operator.post("/v1/vms", json={"name": name, "flavor": "small", "tenant_id": world.tenant_a,
                                             "host": host})
    assert r.status_code == 202, r.get_json()
    assert world.operator.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"
    return str(r.get_json()["vm"]["id"])


def test_reconcile_with_a_host_down_still_checks_the_others_and_leaves_its_vms_unverified(world: World) -> None:
    """Issue 12: one unreachable host neither hides missing VMs elsewhere nor makes its own VMs missing."""
    kept_hv1, gone_hv1 = _active_on(world, "hv1", "kept-hv1"), _active_on(world, "hv1", "gone-hv1")
    gone_hv2, kept_hv3 = _active_on(world, "hv2", "gone-hv2"), _active_on(world, "hv3", "kept-hv3")
    before = {vm: world.operator.get(f"/v1/vms/{vm}").get_json() for vm in (kept_hv1, gone_hv1)}
    assert DATACENTER.remove_domain("hv1", gone_hv1) and DATACENTER.remove_domain("hv2", gone_hv2)
    DATACENTER.set_up("hv1", False)

    report = world.operator.post("/v1/reconcile").get_json()
    assert list(report["hosts_unreachable"]) == ["hv1"] and report["hosts_checked"] == ["hv2", "hv3"]
    assert report["missing"] == [{"vm": gone_hv2, "host": "hv2"}]
    assert sorted(report["unverified"], key=lambda u: u["vm"]) == sorted(
        [{"vm": kept_hv1, "host": "hv1"}, {"vm": gone_hv1, "host": "hv1"}], key=lambda u: u["vm"])
    assert world.operator.get(f"/v1/vms/{gone_hv2}").get_json()["state"] == "ERROR"
    assert world.operator.get(f"/v1/vms/{kept_hv3}").get_json()["state"] == "ACTIVE"
    for vm, was in before.items():  # untouched: same state, reason and version (ETag)
        assert world.operator.get(f"/v1/vms/{vm}").get_json() == was
    actions = [a["action"] for a in world.operator.get("/v1/audit?action=reconcile").get_json()["items"]]
    assert actions == ["reconcile.missing"]

    DATACENTER.set_up("hv1", True)  # it answers again: now its empty inventory counts
    again = world.operator.post("/v1/reconcile").get_json()
    assert again["missing"] == [{"vm": gone_hv1, "host": "hv1"}] and again["unverified"] == []
    assert world.operator.get(f"/v1/vms/{kept_hv1}").get_json()["state"] == "ACTIVE"


def test_reconcile_sees_the_domains_another_process_built(world: World) -> None:
    """Issue 11: the API process reconciles a data center whose domains a separate process (a worker) built."""
    vms = [world.admin_a.get(f"/v1/vms/{_active_vm(world, f'app-{i}')['id']}").get_json() for i in range(3)]
    hosts = {vm["id"]: _host_name(world, vm["host_id"]) for vm in vms}
    for vm in vms:  # start from hypervisors that hold none of them ...
        assert DATACENTER.remove_domain(hosts[vm["id"]], vm["id"])
    dry = world.operator.post("/v1/reconcile?dry_run=true").get_json()
    assert sorted(m["vm"] for m in dry["missing"]) == sorted(hosts)  # ... which reconcile does notice
    built = {}
    with Peer(DATACENTER.store.path) as worker:  # ... then another process builds them
        for vm in vms:
            spec = {k: vm[k] for k in ("name", "vcpus", "ram_mib", "disk_gib", "tenant_id")}
            worker(host=hosts[vm["id"]], call="create", args=[{"vm_id": vm["id"], **spec}])
            built[vm["id"]] = worker(host=hosts[vm["id"]], call="start", args=[vm["id"]])["native_id"]

    report = world.operator.post("/v1/reconcile").get_json()
    assert report["missing"] == [] and report["unverified"] == [] and report["clean"], report
    assert sorted(report["hosts_checked"]) == ["hv1", "hv2", "hv3"]
    for vm in vms:
        assert world.operator.get(f"/v1/vms/{vm['id']}").get_json()["state"] == "ACTIVE"
        here = open_driver("simulated", f"sim://{hosts[vm['id']]}").get(vm["id"])
        assert here is not None and here.native_id == built[vm["id"]]
