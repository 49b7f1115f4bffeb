"""/v1/volumes on the simulated data center: the whole life of a data volume, its claims, and every refusal."""

from __future__ import annotations

from typing import Any

import pytest

from agents.simulated import open_datacenter
from tests.api.test_errors_common import assert_problem, db_state
from tests.api.test_storage_pools import image, pool, reach
from tests.conftest import World


@pytest.fixture
def shared(world: World, image_dirs: tuple[str, str]) -> dict[str, Any]:
    """A shared default pool every host reaches, an image, and an ACTIVE VM of municipality A booted from it."""
    image(world, image_dirs)
    p = pool(world, "ceph", capacity_gib=500, is_default=True)
    for host in ("hv1", "hv2", "hv3"):
        reach(world, host, ["ceph"])
    r = world.admin_a.post("/v1/vms", json={"name": "app", "flavor": "small", "image": "base"})
    assert world.admin_a.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"
    return {"pool": p, "vm": world.admin_a.get(f"/v1/vms/{r.get_json()['vm']['id']}").get_json()}


def volume(caller: Any, name: str = "data", size: int = 5) -> dict[str, Any]:
    r = caller.post("/v1/volumes", json={"name": name, "size_gib": size})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def act(caller: Any, path: str, body: Any = None) -> dict[str, Any]:
    r = caller.post(path, json=body)
    assert r.status_code == 202, r.get_json()
    return caller.wait_op(r.get_json()["id"])


def guest_volumes(vm_id: str) -> list[str]:
    dc = open_datacenter()
    for host in dc.host_names():
        for dom in dc.domains(host):
            if dom.vm_id == vm_id:
                from agents.simulated import SimulatedDriver

                info = SimulatedDriver(f"sim://{host}").get(vm_id)
                return list(info.volumes) if info else []
    return []


def test_a_volume_is_created_attached_extended_detached_and_deleted(world: World, shared: dict[str, Any]):
    vm = shared["vm"]
    vol = volume(world.admin_a, size=5)
    assert (vol["state"], vol["vm_id"]) == ("available", None)
    quota = world.admin_a.get("/v1/quota").get_json()["disk_gib"]
    assert quota["used"] == 10 + 5  # the VM's root disk and the volume
    assert act(world.admin_a, f"/v1/volumes/{vol['id']}/attach", {"vm_id": vm["id"]})["status"] == "succeeded"
    got = world.admin_a.get(f"/v1/volumes/{vol['id']}").get_json()
    assert (got["state"], got["vm_id"], got["device"]) == ("in-use", vm["id"], "vdb")
    assert guest_volumes(vm["id"]) == [f"{vm['id']}-root", vol["id"]]

    assert act(world.admin_a, f"/v1/volumes/{vol['id']}/extend", {"size_gib": 8})["status"] == "succeeded"
    assert world.admin_a.get(f"/v1/volumes/{vol['id']}").get_json()["size_gib"] == 8
    assert world.admin_a.get("/v1/quota").get_json()["disk_gib"]["used"] == 18

    assert act(world.admin_a, f"/v1/volumes/{vol['id']}/detach")["status"] == "succeeded"
    assert guest_volumes(vm["id"]) == [f"{vm['id']}-root"]
    assert world.admin_a.get(f"/v1/volumes/{vol['id']}").get_json()["state"] == "available"
    r = world.admin_a.delete(f"/v1/volumes/{vol['id']}")
    assert world.admin_a.wait_op(r.get_json()["id"])["status"] == "succeeded"
    assert world.admin_a.get(f"/v1/volumes/{vol['id']}").get_json()["state"] == "deleted"
    assert world.admin_a.get("/v1/quota").get_json()["disk_gib"]["used"] == 10
    pools = world.operator.get("/v1/storage-pools").get_json()["items"]
    assert pools[0]["usage"]["allocated_gib"] == 10
    actions = [e["action"] for e in world.admin_a.get("/v1/audit?action=volume.").get_json()["items"]]
    assert {"volume.create", "volume.attach", "volume.attach.succeeded", "volume.extend",
            "volume.extend.succeeded", "volume.detach", "volume.detach.succeeded", "volume.delete",
            "volume.delete.succeeded"} <= set(actions)


def test_deleting_the_vm_keeps_its_volume_with_the_data(world: World, shared: dict[str, Any]):
    vm = shared["vm"]
    vol = volume(world.admin_a)
    act(world.admin_a, f"/v1/volumes/{vol['id']}/attach", {"vm_id": vm["id"]})
    r = world.admin_a.delete(f"/v1/vms/{vm['id']}")
    assert world.admin_a.wait_op(r.get_json()["id"])["status"] == "succeeded"
    got = world.admin_a.get(f"/v1/volumes/{vol['id']}").get_json()
    assert (got["state"], got["vm_id"]) == ("available", None)
    r = world.admin_a.post("/v1/vms", json={"name": "next", "flavor": "small", "image": "base"})
    nxt = r.get_json()["vm"]
    world.admin_a.wait_op(r.get_json()["operation_id"])
    assert act(world.admin_a, f"/v1/volumes/{vol['id']}/attach", {"vm_id": nxt["id"]})["status"] == "succeeded"
    assert guest_volumes(nxt["id"]) == [f"{nxt['id']}-root", vol["id"]]


def test_refusals_change_nothing(app: Any, world: World, shared: dict[str, Any]):
    vm = shared["vm"]
    vol = volume(world.admin_a)
    act(world.admin_a, f"/v1/volumes/{vol['id']}/attach", {"vm_id": vm["id"]})
    other = world.admin_a.post("/v1/vms", json={"name": "other", "flavor": "small", "image": "base"})
    world.admin_a.wait_op(other.get_json()["operation_id"])
    before = db_state(app)
    cases = [
        (world.admin_a.post(f"/v1/volumes/{vol['id']}/attach", json={"vm_id": other.get_json()["vm"]["id"]}),
         409, "invalid-state"),  # attached elsewhere
        (world.admin_a.delete(f"/v1/volumes/{vol['id']}"), 409, "invalid-state"),  # attached: detach first
        (world.admin_a.post(f"/v1/volumes/{vol['id']}/extend", json={"size_gib": 5}), 422, "validation-error"),
        (world.admin_a.post(f"/v1/volumes/{vol['id']}/extend", json={"size_gib": 4}), 422, "validation-error"),
        (world.admin_a.post("/v1/volumes", json={"name": "huge", "size_gib": 5000}), 403, "quota-exceeded"),
        (world.admin_a.post("/v1/volumes", json={"name": "x", "size_gib": 0}), 422, "validation-error"),
        (world.admin_a.post("/v1/volumes", json={"name": "x", "size_gib": 1, "pool": "nope"}), 422,
         "validation-error"),
        (world.admin_b.get(f"/v1/volumes/{vol['id']}"), 404, "not-found"),  # another municipality's
        (world.admin_b.post(f"/v1/volumes/{vol['id']}/detach"), 404, "not-found"),
        (world.admin_a.post(f"/v1/volumes/{vol['id']}/detach", headers={"If-Match": '"999"'}), 412,
         "precondition-failed"),
    ]
    for resp, status, slug in cases:
        assert_problem(resp, status, slug)
    assert db_state(app) == before
    vol_b = volume(world.admin_b, "b-data", 1)
    before = db_state(app)
    assert_problem(world.admin_b.post(f"/v1/volumes/{vol_b['id']}/attach", json={"vm_id": vm["id"]}), 422)
    assert db_state(app) == before


def test_a_full_pool_refuses_a_volume(app: Any, world: World, shared: dict[str, Any]):
    before = db_state(app)  # municipality A may hold 800 GiB, but the pool has 490 GiB left
    problem = assert_problem(world.operator.post("/v1/volumes", json={"name": "big", "size_gib": 495,
                                                                     "tenant_id": world.tenant_a}),
                             409, "insufficient-storage")
    assert problem["pool"] == {"name": "ceph", "capacity_gib": 500, "allocated_gib": 10, "requested_gib": 495}
    assert db_state(app) == before


def test_a_host_refusing_the_attach_leaves_the_volume_available_with_the_reason(world: World,
                                                                                shared: dict[str, Any]):
    vm = shared["vm"]
    vol = volume(world.admin_a)
    host = next(n for n, i in world.hosts.items() if i == vm["host_id"])
    open_datacenter().inject_failure(host, "get", "failed")  # the simulated disk calls check the host first
    op = act(world.admin_a, f"/v1/volumes/{vol['id']}/attach", {"vm_id": vm["id"]})
    assert op["status"] == "failed" and "injected failed failure" in op["error"]
    got = world.admin_a.get(f"/v1/volumes/{vol['id']}").get_json()
    assert (got["state"], got["vm_id"]) == ("available", None) and "injected" in got["status_reason"]


def test_the_root_disk_cannot_be_detached_or_deleted(app: Any, world: World, shared: dict[str, Any]):
    vm = shared["vm"]
    assert vm["root_disk"] == f"{vm['id']}-root"
    before = db_state(app)
    for resp in (world.admin_a.post(f"/v1/volumes/{vm['root_disk']}/detach"),
                 world.admin_a.delete(f"/v1/volumes/{vm['root_disk']}"),
                 world.admin_a.post(f"/v1/volumes/{vm['root_disk']}/extend", json={"size_gib": 99})):
        assert "root disk" in assert_problem(resp, 409, "invalid-state")["detail"]
    assert_problem(world.admin_b.post(f"/v1/volumes/{vm['root_disk']}/detach"), 404)  # never confirmed to others
    assert db_state(app) == before
