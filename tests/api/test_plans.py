"""Plans on the simulated data center: review, approve, execute, re-validate, cancel, policies, lock."""

from __future__ import annotations

from typing import Any

from agents import open_driver
from agents.simulated import open_datacenter
from tests.conftest import World, wait_for

DATACENTER = open_datacenter()  # the test session's store (tests/conftest.py sets CONFLUENCIA_SIM_STATE)


def skew(world: World, count: int = 8, host: str = "hv1", flavor: str = "medium", **extra: Any) -> list[str]:
    """Operator placement override: ``count`` VMs of municipality A all on ``host``."""
    ids = []
    for i in range(count):
        r = world.operator.post("/v1/vms", json={"name": f"skew-{i}", "flavor": flavor, "host": host,
                                                 "tenant_id": world.tenant_a, **extra})
        assert r.status_code == 202, r.get_json()
        ids.append(r.get_json()["vm"]["id"])
    for vm_id in ids:
        wait_for(lambda vm_id=vm_id: world.operator.get(f"/v1/vms/{vm_id}").get_json()["state"] == "ACTIVE")
    return ids


def hosts_of(world: World) -> dict[str, dict[str, Any]]:
    return {h["name"]: h for h in world.operator.get("/v1/hosts").get_json()["items"]}


def run_plan(world: World, plan: dict[str, Any]) -> dict[str, Any]:
    r = world.operator.post(f"/v1/plans/{plan['id']}/approve")
    assert r.status_code == 202, r.get_json()
    world.operator.wait_op(r.get_json()["operation_id"], timeout=60)
    return world.operator.get(f"/v1/plans/{plan['id']}").get_json()  # type: ignore[no-any-return]


def assert_db_matches_hypervisors(world: World) -> None:
    names = {i: n for n, i in world.hosts.items()}
    db = {n: set() for n in world.hosts}  # type: dict[str, set[str]]
    for vm in world.operator.get("/v1/vms?limit=500").get_json()["items"]:
        db[names[vm["host_id"]]].add(vm["id"])
    real = {n: {d.vm_id for d in open_driver("simulated", f"sim://{n}").list_domains()} for n in world.hosts}
    assert real == db


def test_rebalance_plan_is_a_draft_until_approved_then_achieves_its_prediction(world: World) -> None:
    vms = skew(world)
    before = {vm: world.operator.get(f"/v1/vms/{vm}").get_json()["host_id"] for vm in vms}
    r = world.operator.post("/v1/plans", json={"kind": "rebalance", "budget": {"max_moves": 10}})
    assert r.status_code == 201, r.get_json()
    plan = r.get_json()
    assert plan["status"] == "draft" and plan["moves"] and r.headers["Location"] == f"/v1/plans/{plan['id']}"
    pred = plan["predicted"]
    assert pred["objective_after"] < pred["objective_before"]
    assert set(pred["stdev_before"]) == set(pred["spread_before"]) == {"vcpu", "ram_mib", "disk_gib"}
    assert plan["cost_ram_mib"] == sum(m["cost_ram_mib"] for m in plan["moves"])
    assert all(m["wave"] >= 1 and m["status"] == "pending" for m in plan["moves"])
    # a draft moves nothing
    assert {vm: world.operator.get(f"/v1/vms/{vm}").get_json()["host_id"] for vm in vms} == before

    done = run_plan(world, plan)
    assert done["status"] == "succeeded", done
    assert {m["status"] for m in done["moves"]} == {"succeeded"}
    assert done["progress"]["percent"] == 100
    assert abs(done["achieved"]["objective"] - pred["objective_after"]) < 1e-9
    for m in done["moves"]:
        assert world.operator.get(f"/v1/vms/{m['vm_id']}").get_json()["host_id"] == m["target_host_id"]
    assert_db_matches_hypervisors(world)
    actions = [e["action"] for e in world.operator.get(f"/v1/audit?target_id={plan['id']}").get_json()["items"]]
    assert actions[::-1] == ["plan.create.rebalance", "plan.approve", "plan.succeeded"]


def test_a_balanced_cluster_gets_an_empty_plan(world: World) -> None:
    for i in range(6):
        world.admin_a.post("/v1/vms", json={"name": f"even-{i}", "flavor": "small"})
    wait_for(lambda: world.operator.get("/v1/vms?state=ACTIVE").get_json()["total"] == 6)
    plan = world.operator.post("/v1/plans", json={"kind": "rebalance"}).get_json()
    assert plan["moves"] == [] and plan["status"] == "draft"


def test_pinned_vms_and_excluded_municipalities_never_move(world: World) -> None:
    vms = skew(world, 6)
    vm = world.operator.get(f"/v1/vms/{vms[0]}")
    r = world.operator.patch(f"/v1/vms/{vms[0]}", json={"pinned": True}, headers={"If-Match": vm.headers["ETag"]})
    assert r.status_code == 200 and r.get_json()["pinned"] is True
    assert world.admin_a.patch(f"/v1/vms/{vms[1]}", json={"pinned": True},
                               headers={"If-Match": '"1"'}).status_code == 403
    plan = world.operator.post("/v1/plans", json={"kind": "rebalance"}).get_json()
    assert plan["moves"] and vms[0] not in {m["vm_id"] for m in plan["moves"]}

    t = world.operator.get(f"/v1/tenants/{world.tenant_a}")
    assert world.operator.patch(f"/v1/tenants/{world.tenant_a}", json={"exclude_from_rebalance": True},
                                headers={"If-Match": t.headers["ETag"]}).status_code == 200
    assert world.operator.post("/v1/plans", json={"kind": "rebalance"}).get_json()["moves"] == []


def test_stale_moves_are_skipped_with_the_reason(world: World) -> None:
    vms = skew(world, 6)
    plan = world.operator.post("/v1/plans", json={"kind": "rebalance"}).get_json()
    victim = plan["moves"][0]["vm_id"]
    world.operator.wait_op(world.operator.delete(f"/v1/vms/{victim}").get_json()["id"])
    done = run_plan(world, plan)
    assert done["status"] == "succeeded"
    skipped = [m for m in done["moves"] if m["vm_id"] == victim]
    assert skipped[0]["status"] == "skipped" and skipped[0]["reason"] == "the VM was deleted"
    assert {m["status"] for m in done["moves"] if m["vm_id"] != victim} == {"succeeded"}
    assert len(vms) == 6


def test_failed_move_policy_stop_versus_continue(world: World) -> None:
    skew(world, 8)
    for policy, reason in (("stop", "stopped after a failed move (policy: stop)"), ("continue", "1 of 4 moves failed")):
        plan = world.operator.post("/v1/plans", json={"kind": "rebalance", "on_failure": policy,
                                                      "budget": {"max_moves": 4}}).get_json()
        first = plan["moves"][0]
        DATACENTER.inject_failure(next(n for n, i in world.hosts.items() if i == first["source_host_id"]),
                                  "migrate", kind="failed", times=1)
        done = run_plan(world, plan)
        assert (done["status"], done["reason"]) == ("failed", reason), done  # policy: what runs, not how it ends
        statuses = [m["status"] for m in done["moves"]]
        assert statuses.count("failed") == 1
        failed = next(m for m in done["moves"] if m["status"] == "failed")
        later = [m["status"] for m in done["moves"] if m["wave"] > failed["wave"]]
        assert later  # every move leaves hv1, one per wave: there are later waves
        assert set(later) == ({"cancelled"} if policy == "stop" else {"succeeded"})
        vm = world.operator.get(f"/v1/vms/{failed['vm_id']}").get_json()
        assert vm["state"] == "ACTIVE" and vm["host_id"] == failed["source_host_id"]  # where it really is
        assert_db_matches_hypervisors(world)


def test_cancel_stops_after_the_migrations_in_flight(world: World) -> None:
    skew(world, 8)
    DATACENTER.set_delay_scale(1.0)  # migrations take about a second each: time to cancel
    plan = world.operator.post("/v1/plans", json={"kind": "rebalance", "budget": {"max_moves": 6}}).get_json()
    assert len({m["wave"] for m in plan["moves"]}) > 1
    world.operator.post(f"/v1/plans/{plan['id']}/approve")
    wait_for(lambda: world.operator.get(f"/v1/plans/{plan['id']}").get_json()["progress"]["running"] > 0)
    r = world.operator.post(f"/v1/plans/{plan['id']}/cancel")
    assert r.status_code == 202
    done = wait_for(lambda: (lambda p: p if p["status"] not in ("approved", "running") else None)(
        world.operator.get(f"/v1/plans/{plan['id']}").get_json()), timeout=30)
    assert done["status"] == "cancelled"
    statuses = [m["status"] for m in done["moves"]]
    assert "cancelled" in statuses and "running" not in statuses and "pending" not in statuses
    assert world.operator.get("/v1/vms?state=MIGRATING").get_json()["total"] == 0
    DATACENTER.set_delay_scale(0.0)
    assert_db_matches_hypervisors(world)


def test_one_plan_executes_at_a_time(world: World) -> None:
    skew(world, 8)
    a = world.operator.post("/v1/plans", json={"kind": "rebalance", "budget": {"max_moves": 2}}).get_json()
    b = world.operator.post("/v1/plans", json={"kind": "rebalance", "budget": {"max_moves": 2}}).get_json()
    world.operator.post(f"/v1/plans/{a['id']}/approve")
    world.operator.post(f"/v1/plans/{b['id']}/approve")
    a_done = wait_for(lambda: (lambda p: p if p["finished_at"] else None)(
        world.operator.get(f"/v1/plans/{a['id']}").get_json()), timeout=30)
    b_done = wait_for(lambda: (lambda p: p if p["finished_at"] else None)(
        world.operator.get(f"/v1/plans/{b['id']}").get_json()), timeout=30)
    first, second = sorted((a_done, b_done), key=lambda p: p["started_at"])
    assert second["started_at"] >= first["finished_at"]
    # b was computed before a ran: its moves were re-checked and the stale ones skipped
    assert_db_matches_hypervisors(world)


def test_maintenance_drains_the_host_and_keeps_new_vms_away(world: World) -> None:
    vms = skew(world, 6, host="hv3", flavor="small")
    r = world.operator.post("/v1/hosts/hv3/maintenance", json={"enabled": True, "reason": "cambio de discos"})
    assert r.status_code == 200 and r.get_json()["state"] == "maintenance"
    drain = world.operator.get("/v1/plans?kind=drain").get_json()["items"][0]
    assert drain["origin"] == "maintenance" and drain["host_id"] == world.hosts["hv3"]
    wait_for(lambda: world.operator.get(f"/v1/plans/{drain['id']}").get_json()["status"] == "succeeded", 30)
    hosts = hosts_of(world)
    assert hosts["hv3"]["usage"]["vms"] == 0
    assert hosts["hv1"]["usage"]["vms"] > 0 and hosts["hv2"]["usage"]["vms"] > 0  # spread, not dumped
    assert_db_matches_hypervisors(world)
    for i in range(4):
        new = world.admin_a.post("/v1/vms", json={"name": f"after-{i}", "flavor": "small"}).get_json()
        assert new["vm"]["host_id"] != world.hosts["hv3"]
    assert len(vms) == 6
    r = world.operator.post("/v1/hosts/hv3/maintenance", json={"enabled": False})
    assert r.get_json()["state"] == "enabled"


def test_a_drain_that_leaves_a_vm_behind_is_reported_failed(world: World) -> None:
    vms = skew(world, 3, host="hv3", flavor="small")
    DATACENTER.inject_failure("hv3", "migrate", kind="failed", times=1)
    world.operator.post("/v1/hosts/hv3/maintenance", json={"enabled": True})
    drain = world.operator.get("/v1/plans?kind=drain").get_json()["items"][0]
    done = wait_for(lambda: (lambda p: p if p["finished_at"] else None)(
        world.operator.get(f"/v1/plans/{drain['id']}").get_json()), timeout=30)
    failed = [m for m in done["moves"] if m["status"] == "failed"]
    assert done["status"] == "failed" and len(failed) == 1, done
    assert done["reason"] == f"1 of 3 moves failed; the host still holds 1 VM(s): {failed[0]['vm_id']}"
    assert hosts_of(world)["hv3"]["usage"]["vms"] == 1 and hosts_of(world)["hv3"]["state"] == "maintenance"
    assert world.operator.get(f"/v1/operations/{done['operation_id']}").get_json()["status"] == "failed"
    assert len(vms) == 3
    assert_db_matches_hypervisors(world)


def test_maintenance_is_refused_while_pinned_vms_live_there(world: World) -> None:
    vms = skew(world, 2, host="hv2", flavor="small")
    etag = world.operator.get(f"/v1/vms/{vms[0]}").headers["ETag"]
    world.operator.patch(f"/v1/vms/{vms[0]}", json={"pinned": True}, headers={"If-Match": etag})
    r = world.operator.post("/v1/hosts/hv2/maintenance", json={"enabled": True})
    assert r.status_code == 409 and r.get_json()["pinned"] == ["skew-0"]
    assert hosts_of(world)["hv2"]["state"] == "enabled"
    assert world.operator.get("/v1/plans").get_json()["total"] == 0


def test_plan_requests_that_make_no_sense_are_refused(world: World) -> None:
    op = world.operator
    assert op.post("/v1/plans", json={"kind": "shuffle"}).status_code == 422
    assert op.post("/v1/plans", json={"kind": "drain", "host": "nope"}).status_code == 422
    assert op.post("/v1/plans", json={"kind": "rebalance", "budget": {"max_per_host": 0}}).status_code == 422
    assert op.post("/v1/plans", json={"kind": "rebalance", "budget": {"min_gain": -1}}).status_code == 422
    assert world.admin_a.post("/v1/plans", json={"kind": "rebalance"}).status_code == 403
    plan = op.post("/v1/plans", json={"kind": "rebalance"}).get_json()
    assert op.post(f"/v1/plans/{plan['id']}/discard").get_json()["status"] == "discarded"
    r = op.post(f"/v1/plans/{plan['id']}/approve")
    assert r.status_code == 409 and r.get_json()["type"] == "/problems/invalid-state"
    assert op.post(f"/v1/plans/{plan['id']}/cancel").status_code == 409
    assert op.get("/v1/plans/00000000-0000-0000-0000-000000000000").status_code == 404
