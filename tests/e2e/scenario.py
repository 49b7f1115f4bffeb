"""The same end-to-end story for every hypervisor backend, told through the HTTP API only.

A municipality creates 6 VMs on 3 hosts; placement spreads them evenly; the domains really run on the
chosen hypervisors; stop/start work; an operator live-migrates one VM; deletes remove the domains; at the
end the database agrees with every hypervisor's own inventory and reconcile finds no drift.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from tests.e2e.stack import Stack

Inventory = Callable[[str], dict[str, str]]  # host name -> {vm_id: "running" | "stopped"} of OUR VMs


def run_vm_scenario(stack: Stack, ids: dict[str, str], hosts: list[str], inventory: Inventory,
                    flavor: str) -> None:
    token = ids["token"]
    names = {ids[h]: h for h in hosts}
    accepted = [stack.ok("POST", "/v1/vms", token, {"name": f"e2e-{i}", "flavor": flavor}) for i in range(6)]
    for item in accepted:
        op = stack.wait_op(item["operation_id"], token)
        assert op["status"] == "succeeded", (op, stack.log_tail("worker"))
    vms = {v["id"]: v for v in stack.ok("GET", "/v1/vms", token)["items"]}
    assert len(vms) == 6 and {v["state"] for v in vms.values()} == {"ACTIVE"}

    # placement spread them evenly, and each domain runs where the database says
    assert Counter(names[v["host_id"]] for v in vms.values()) == {h: 2 for h in hosts}
    _agree(stack, token, hosts, inventory, names)

    # stop / start
    first = next(iter(vms))
    host_of_first = names[vms[first]["host_id"]]
    assert stack.wait_op(stack.ok("POST", f"/v1/vms/{first}/stop", token)["id"], token)["status"] == "succeeded"
    assert stack.ok("GET", f"/v1/vms/{first}", token)["state"] == "STOPPED"
    assert inventory(host_of_first)[first] == "stopped"
    assert stack.wait_op(stack.ok("POST", f"/v1/vms/{first}/start", token)["id"], token)["status"] == "succeeded"
    assert inventory(host_of_first)[first] == "running"

    # an operator live-migrates one VM: the real guest moves
    moving = list(vms)[1]
    source = names[vms[moving]["host_id"]]
    target = next(h for h in hosts if h != source)
    op = stack.wait_op(stack.ok("POST", f"/v1/vms/{moving}/migrate", json={"host": target})["id"])
    assert op["status"] == "succeeded", (op, stack.log_tail("worker"))
    assert stack.ok("GET", f"/v1/vms/{moving}", token)["host_id"] == ids[target]
    assert inventory(target).get(moving) == "running"
    assert moving not in inventory(source)
    _agree(stack, token, hosts, inventory, names)

    # delete half, check agreement and reconcile, then delete the rest
    doomed = list(vms)[:3]
    for vm_id in doomed:
        assert stack.wait_op(stack.ok("DELETE", f"/v1/vms/{vm_id}", token)["id"], token)["status"] == "succeeded"
    _agree(stack, token, hosts, inventory, names)
    report = stack.ok("POST", "/v1/reconcile?dry_run=true")
    assert report["moved"] == report["missing"] == report["state_fixed"] == report["duplicates"] == [], report
    assert not report["hosts_unreachable"], report
    for vm_id in list(vms)[3:]:
        assert stack.wait_op(stack.ok("DELETE", f"/v1/vms/{vm_id}", token)["id"], token)["status"] == "succeeded"
    assert all(not (set(inventory(h)) & set(vms)) for h in hosts)
    assert stack.ok("GET", "/v1/quota", token)["vms"]["used"] == 0


def _agree(stack: Stack, token: str, hosts: list[str], inventory: Inventory, names: dict[str, str]) -> None:
    """The database and the hypervisors list exactly the same VMs per host, in the same power state."""
    db = {h: {} for h in hosts}  # type: dict[str, dict[str, str]]
    for v in stack.ok("GET", "/v1/vms?limit=500", token)["items"]:
        db[names[v["host_id"]]][v["id"]] = {"ACTIVE": "running", "STOPPED": "stopped"}[v["state"]]
    real = {h: inventory(h) for h in hosts}
    assert real == db, f"hypervisors {real} != database {db}"
