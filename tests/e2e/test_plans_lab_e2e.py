"""Issue 6 on the real libvirt lab (4 hosts): rebalance plans, maintenance drains, a daemon killed in the
middle of a plan, and the nightly optimizer run for real by the Celery worker."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from tests.e2e.stack import Stack, running_stack, setup_tenant
from tests.e2e.test_libvirt_e2e import _virsh_inventory

pytestmark = pytest.mark.libvirt


@pytest.fixture(scope="module")
def env(lab: Any, broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict]]:
    from tests.lab.session import driver_options, host

    hosts = [host(lab, i) for i in (1, 2, 3, 4)]
    extra = {"CONFLUENCIA_MAINTENANCE_WINDOW": "", "CONFLUENCIA_NIGHTLY_AUTO_APPROVE": "1",
             "CONFLUENCIA_NIGHTLY_THRESHOLD": "0.05"}
    with running_stack(tmp_path_factory.mktemp("e2e-plans"), broker_url, extra) as stack:
        ids = setup_tenant(stack, [
            {"name": h.name, "driver": "libvirt", "uri": h.uri, "options": driver_options(h), "vcpus": 4,
             "ram_mib": 512, "disk_gib": 40} for h in hosts
        ], {"name": "lab.tiny", "vcpus": 1, "ram_mib": 32, "disk_gib": 1})
        ctx = {**ids, "uris": {h.name: h.uri for h in hosts}, "names": [h.name for h in hosts],
               "broker": broker_url}
        try:
            yield stack, ctx
        finally:  # leave no guest running on the shared lab
            for vm in stack.ok("GET", "/v1/vms?limit=500")["items"]:
                if vm["state"] in ("ACTIVE", "STOPPED", "ERROR"):
                    stack.call("DELETE", f"/v1/vms/{vm['id']}")
            deadline = time.monotonic() + 120
            while stack.ok("GET", "/v1/vms?limit=500")["total"] and time.monotonic() < deadline:
                time.sleep(0.2)


def skew(stack: Stack, ctx: dict, host: str, count: int) -> list[str]:
    made = [stack.ok("POST", "/v1/vms", json={"name": f"{host}-{i}", "flavor": "lab.tiny", "host": host,
                                             "tenant_id": ctx["tenant"]}) for i in range(count)]
    for item in made:
        assert stack.wait_op(item["operation_id"])["status"] == "succeeded", stack.log_tail("worker")
    return [item["vm"]["id"] for item in made]


def where(stack: Stack, ctx: dict) -> dict[str, str]:
    """VM id -> host name according to the database, checked against every daemon's `virsh list`."""
    names = {ctx[n]: n for n in ctx["names"]}
    db = {v["id"]: names[v["host_id"]] for v in stack.ok("GET", "/v1/vms?limit=500")["items"]}
    real: dict[str, str] = {}
    for n in ctx["names"]:
        for vm_id, state in _virsh_inventory(ctx["uris"][n]).items():
            if vm_id in db:
                assert vm_id not in real, f"{vm_id} defined on {real[vm_id]} and {n}"
                assert state == "running", (vm_id, n, state)
                real[vm_id] = n
    assert real == db, f"daemons {real} != database {db}"
    return db


def finish(stack: Stack, plan_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        plan = stack.ok("GET", f"/v1/plans/{plan_id}")
        if plan["status"] not in ("draft", "approved", "running"):
            return plan  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, (plan["progress"], stack.log_tail("worker"))
        time.sleep(0.25)


def test_rebalance_moves_real_guests_and_matches_the_prediction(env: tuple[Stack, dict]) -> None:
    stack, ctx = env
    first = ctx["names"][0]
    skew(stack, ctx, first, 10)
    assert Counter(where(stack, ctx).values()) == {first: 10}
    plan = stack.ok("POST", "/v1/plans", json={"kind": "rebalance", "budget": {"max_moves": 10, "max_per_host": 2}})
    assert plan["status"] == "draft" and len(plan["moves"]) >= 5
    expected = {**where(stack, ctx)}
    names = {ctx[n]: n for n in ctx["names"]}
    for m in plan["moves"]:
        expected[m["vm_id"]] = names[m["target_host_id"]]
    stack.ok("POST", f"/v1/plans/{plan['id']}/approve")
    done = finish(stack, plan["id"])
    assert done["status"] == "succeeded", (done, stack.log_tail("worker"))
    assert {m["status"] for m in done["moves"]} == {"succeeded"}
    assert where(stack, ctx) == expected  # the real guests ended where the plan said
    assert abs(done["achieved"]["objective"] - done["predicted"]["objective_after"]) < 1e-9
    assert done["achieved"]["spread"] == pytest.approx(done["predicted"]["spread_after"])


def test_maintenance_empties_the_host_over_several_hosts(env: tuple[Stack, dict]) -> None:
    stack, ctx = env
    before = where(stack, ctx)
    busiest = Counter(before.values()).most_common(1)[0][0]
    on_it = {vm for vm, h in before.items() if h == busiest}
    host = stack.ok("POST", f"/v1/hosts/{busiest}/maintenance", json={"enabled": True, "reason": "firmware"})
    assert host["state"] == "maintenance"
    drain = next(p for p in stack.ok("GET", "/v1/plans?kind=drain")["items"] if p["host_id"] == ctx[busiest])
    done = finish(stack, drain["id"])
    assert done["status"] == "succeeded", (done, stack.log_tail("worker"))
    after = where(stack, ctx)
    assert busiest not in after.values()
    assert len({after[vm] for vm in on_it}) >= 2  # spread, not dumped on one host
    new = stack.ok("POST", "/v1/vms", ctx["token"], {"name": "during-maintenance", "flavor": "lab.tiny"})
    assert new["vm"]["host_id"] != ctx[busiest]
    assert stack.wait_op(new["operation_id"], ctx["token"])["status"] == "succeeded"
    assert stack.ok("POST", f"/v1/hosts/{busiest}/maintenance", json={"enabled": False})["state"] == "enabled"


def back_up(stack: Stack, ctx: dict, name: str, timeout_s: float = 120.0) -> None:
    """The worker marked a restarted host down; without beat in this stack, send the health checks beat would
    send (every CONFLUENCIA_HEALTH_CHECK_S) until one passes (the host's circuit breaker first lets its cool-down
    run out), so the next tests find all four hosts enabled."""
    beat = Celery("e2e-beat", broker=ctx["broker"])
    deadline = time.monotonic() + timeout_s
    while stack.ok("GET", f"/v1/hosts/{ctx[name]}")["state"] != "enabled":
        assert time.monotonic() < deadline, f"{name} did not come back: {stack.log_tail('worker')}"
        beat.send_task("confluencia.hosts.check", args=[ctx[name]])
        time.sleep(5)  # a beat period: the check runs in the worker, its result is polled above


def test_a_daemon_killed_mid_plan_loses_nothing_and_the_record_is_true(env: tuple[Stack, dict], lab: Any) -> None:
    stack, ctx = env
    source = ctx["names"][3]
    skew(stack, ctx, source, 6)
    before = where(stack, ctx)
    plan = stack.ok("POST", "/v1/plans", json={"kind": "rebalance", "on_failure": "continue",
                                               "budget": {"max_moves": 8, "max_per_host": 1}})
    names = {ctx[n]: n for n in ctx["names"]}
    targets = Counter(names[m["target_host_id"]] for m in plan["moves"])
    victim = targets.most_common(1)[0][0]  # the daemon to kill: the host receiving the most guests
    assert victim != source and targets[victim] >= 1
    stack.ok("POST", f"/v1/plans/{plan['id']}/approve")
    deadline = time.monotonic() + 60
    while stack.ok("GET", f"/v1/plans/{plan['id']}")["progress"]["running"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    lab.kill_host(victim)
    try:
        done = finish(stack, plan["id"])
    finally:
        lab.restart_host(victim)
        back_up(stack, ctx, victim)
    failed = [m for m in done["moves"] if m["status"] == "failed"]
    # policy continue: the plan went on after the failures, and says that it failed
    assert done["status"] == "failed" and done["reason"] == f"{len(failed)} of {len(done['moves'])} moves failed"
    assert failed and all(m["target_host_id"] == ctx[victim] or m["source_host_id"] == ctx[victim]
                          for m in failed)
    after = where(stack, ctx)  # every VM runs exactly where the database says
    assert set(after) == set(before)  # nothing lost
    vms = {v["id"]: v for v in stack.ok("GET", "/v1/vms?limit=500")["items"]}
    assert {v["state"] for v in vms.values()} == {"ACTIVE"}


def test_the_nightly_job_runs_for_real_in_the_worker(env: tuple[Stack, dict]) -> None:
    stack, ctx = env
    skew(stack, ctx, ctx["names"][1], 6)
    known = {p["id"] for p in stack.ok("GET", "/v1/plans?limit=500")["items"]}
    Celery("e2e-beat", broker=ctx["broker"]).send_task("confluencia.plans.nightly")  # what beat sends at 02:00
    deadline = time.monotonic() + 60
    while not (new := [p for p in stack.ok("GET", "/v1/plans?limit=500")["items"] if p["id"] not in known]):
        assert time.monotonic() < deadline, stack.log_tail("worker")
        time.sleep(0.2)
    assert new[0]["origin"] == "nightly"
    done = finish(stack, new[0]["id"])
    assert done["status"] == "succeeded" and done["moves"], done
    assert done["achieved"]["objective"] < done["predicted"]["objective_before"]
    where(stack, ctx)
