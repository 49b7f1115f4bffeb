"""Issue 12: a host under an approved or running drain plan receives no new VMs (it used to, unless it
was also in maintenance)."""

from __future__ import annotations

from typing import Any

from agents.simulated import open_datacenter
from tests.conftest import World, wait_for

DATACENTER = open_datacenter()  # the test session's store (tests/conftest.py sets CONFLUENCIA_SIM_STATE)


def test_a_host_being_drained_takes_no_new_vms(world: World, app: Any) -> None:
    op = world.operator
    r = op.post("/v1/vms", json={"name": "on-hv3", "flavor": "small", "tenant_id": world.tenant_a, "host": "hv3"})
    assert op.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"
    DATACENTER.set_delay_scale(10.0)  # the drain's migration takes ~12 s
    try:
        plan = op.post("/v1/plans", json={"kind": "drain", "host": "hv3"}).get_json()
        assert op.post(f"/v1/plans/{plan['id']}/approve").status_code == 202
        wait_for(lambda: op.get(f"/v1/plans/{plan['id']}").get_json()["status"] == "running", timeout=5)
        for i in range(4):  # hv3 is the largest and emptiest host: placement would pick it
            r = world.admin_a.post("/v1/vms", json={"name": f"w{i}", "flavor": "small"})
            assert r.status_code == 202 and r.get_json()["vm"]["host_id"] != world.hosts["hv3"]
        r = op.post("/v1/vms", json={"name": "x", "flavor": "small", "tenant_id": world.tenant_a, "host": "hv3"})
        assert r.status_code == 409 and "drained" in r.get_json()["detail"], r.get_json()
    finally:
        DATACENTER.set_delay_scale(0.0)
    wait_for(lambda: op.get(f"/v1/plans/{plan['id']}").get_json()["status"] == "succeeded", timeout=30)
    r = world.admin_a.post("/v1/vms", json={"name": "after", "flavor": "small"})  # drained: takes VMs again
    assert r.status_code == 202
