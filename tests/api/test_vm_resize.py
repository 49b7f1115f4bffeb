"""POST /v1/vms/<id>/resize on the simulated data center: in place, moved first when the host is full,
and the refusals (smaller disk, same size, quota) that change nothing."""

from __future__ import annotations

from typing import Any

from agents.simulated import SimulatedDriver
from tests.api.test_errors_common import assert_problem, db_state
from tests.api.test_storage_pools import image
from tests.conftest import World


def build(world: World, caller: Any, **body: Any) -> dict[str, Any]:
    r = caller.post("/v1/vms", json={"flavor": "small", "image": "base", **body})
    assert r.status_code == 202, r.get_json()
    assert caller.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"
    return dict(caller.get(f"/v1/vms/{r.get_json()['vm']['id']}").get_json())


def domain(world: World, vm: dict[str, Any]) -> Any:
    host = next(n for n, i in world.hosts.items() if i == vm["host_id"])
    return SimulatedDriver(f"sim://{host}").get(vm["id"])


def test_resize_in_place_changes_size_usage_and_the_root_disk(world: World, image_dirs):
    image(world, image_dirs)
    vm = build(world, world.admin_a, name="app")
    used = world.admin_a.get("/v1/quota").get_json()
    r = world.admin_a.post(f"/v1/vms/{vm['id']}/resize", json={"flavor": "medium"})
    assert r.status_code == 202, r.get_json()
    assert world.admin_a.wait_op(r.get_json()["id"])["status"] == "succeeded"
    after = world.admin_a.get(f"/v1/vms/{vm['id']}").get_json()
    assert (after["vcpus"], after["ram_mib"], after["disk_gib"], after["host_id"]) == (2, 4096, 40, vm["host_id"])
    quota = world.admin_a.get("/v1/quota").get_json()
    assert quota["ram_mib"]["used"] == used["ram_mib"]["used"] + 3072
    assert quota["disk_gib"]["used"] == used["disk_gib"]["used"] + 30
    info = domain(world, after)
    assert (info.vcpus, info.ram_mib) == (2, 4096)
    actions = [e["action"] for e in world.admin_a.get("/v1/audit?action=vm.resize").get_json()["items"]]
    assert set(actions) == {"vm.resize", "vm.resize.applied", "vm.resize.succeeded"}


def test_a_full_host_moves_the_vm_first(world: World, image_dirs):
    image(world, image_dirs)
    vm = build(world, world.operator, name="app", tenant_id=world.tenant_a, host="hv1")
    filler = world.operator.post("/v1/vms", json={"name": "filler", "vcpus": 1, "ram_mib": 62000, "disk_gib": 10,
                                                  "tenant_id": world.tenant_a, "host": "hv1"})
    assert filler.status_code == 202, filler.get_json()
    world.operator.wait_op(filler.get_json()["operation_id"])
    r = world.admin_a.post(f"/v1/vms/{vm['id']}/resize", json={"flavor": "medium"})
    assert r.status_code == 202, r.get_json()
    op = world.admin_a.wait_op(r.get_json()["id"], timeout=60)
    assert op["status"] == "succeeded", op
    after = world.admin_a.get(f"/v1/vms/{vm['id']}").get_json()
    assert after["host_id"] != world.hosts["hv1"] and (after["vcpus"], after["ram_mib"]) == (2, 4096)
    plans = world.operator.get("/v1/plans").get_json()["items"]
    assert [(p["kind"], p["origin"], p["status"]) for p in plans] == [("migrate", "resize", "succeeded")]
    assert domain(world, after).ram_mib == 4096


def test_bad_resizes_are_refused_and_change_nothing(app: Any, world: World, image_dirs):
    from controlplane.seed import SEEDER
    from controlplane.services import flavors

    image(world, image_dirs)
    with app.app_context():
        flavors.create_flavor(SEEDER, {"name": "thin", "vcpus": 4, "ram_mib": 2048, "disk_gib": 5})
        flavors.create_flavor(SEEDER, {"name": "huge", "vcpus": 64, "ram_mib": 8192, "disk_gib": 40})
    vm = build(world, world.admin_a, name="app")
    before = db_state(app)
    cases = [
        (world.admin_a.post(f"/v1/vms/{vm['id']}/resize", json={"flavor": "thin"}), 422),  # disk 10 -> 5
        (world.admin_a.post(f"/v1/vms/{vm['id']}/resize", json={"flavor": "small"}), 422),  # same size
        (world.admin_a.post(f"/v1/vms/{vm['id']}/resize", json={"flavor": "nope"}), 422),
        (world.admin_a.post(f"/v1/vms/{vm['id']}/resize", json={"flavor": "huge"}), 403),  # 64 vCPU > quota 40
        (world.admin_b.post(f"/v1/vms/{vm['id']}/resize", json={"flavor": "medium"}), 404),
        (world.admin_a.post(f"/v1/vms/{vm['id']}/resize", json={}), 422),
    ]
    for resp, status in cases:
        assert_problem(resp, status)
    assert db_state(app) == before
