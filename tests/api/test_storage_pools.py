"""/v1/storage-pools and what pools do to placement and claims: a root disk in a shared pool claims the pool,
not the host; only hosts that reach the pool take the VM; a full pool refuses with problem+json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.test_errors_common import assert_problem, db_state
from tests.conftest import World


def image(world: World, image_dirs: tuple[str, str], name: str = "base", **kw: Any) -> dict[str, Any]:
    import hashlib

    path = Path(image_dirs[1]) / f"{name}.raw"
    path.write_bytes(b"\0" * (1 << 20))
    r = world.operator.post("/v1/images", json={"name": name, "source": str(path), "min_disk_gib": 1,
                                                "checksum": "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest(),
                                                **kw})
    assert r.status_code == 202, r.get_json()
    assert world.operator.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"
    return r.get_json()["image"]


def pool(world: World, name: str, kind: str = "shared", **kw: Any) -> dict[str, Any]:
    body = {"name": name, "kind": kind, **({"capacity_gib": 100} if kind == "shared" else {}), **kw}
    r = world.operator.post("/v1/storage-pools", json=body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def reach(world: World, host: str, pools: list[str]) -> None:
    etag = world.operator.get(f"/v1/hosts/{host}").headers["ETag"]
    r = world.operator.patch(f"/v1/hosts/{host}", json={"storage_pools": pools}, headers={"If-Match": etag})
    assert r.status_code == 200 and r.get_json()["storage_pools"] == pools, r.get_json()


def test_a_root_disk_in_a_shared_pool_claims_the_pool_and_lands_where_the_pool_is(world: World, image_dirs):
    image(world, image_dirs)
    pool(world, "nfs-a", is_default=True)
    reach(world, "hv2", ["nfs-a"])
    r = world.admin_a.post("/v1/vms", json={"name": "web", "flavor": "medium", "image": "base"})
    assert r.status_code == 202, r.get_json()
    vm = r.get_json()["vm"]
    assert vm["host_id"] == world.hosts["hv2"] and vm["pool_id"]
    world.admin_a.wait_op(r.get_json()["operation_id"])
    hosts = {h["name"]: h for h in world.operator.get("/v1/hosts").get_json()["items"]}
    assert hosts["hv2"]["usage"]["allocated"]["disk_gib"] == 0  # the disk is in the pool, not on the host
    assert hosts["hv2"]["usage"]["allocated"]["ram_mib"] == 4096
    listed = world.operator.get("/v1/storage-pools").get_json()["items"]
    assert listed[0]["usage"] == {"allocated_gib": 40, "vms": 1, "volumes": 0}
    assert "usage" not in world.admin_a.get("/v1/storage-pools").get_json()["items"][0]
    assert world.admin_a.get("/v1/quota").get_json()["disk_gib"]["used"] == 40


def test_no_host_reaching_the_pool_is_a_capacity_problem_that_says_so(app: Any, world: World, image_dirs):
    image(world, image_dirs)
    pool(world, "nfs-b", is_default=True)
    before = db_state(app)
    r = world.admin_a.post("/v1/vms", json={"name": "web", "flavor": "small", "image": "base"},
                           headers={"Accept-Language": "es"})
    problem = assert_problem(r, 409, "insufficient-capacity")
    assert "no llega al pool de almacenamiento" in problem["detail"], problem
    assert db_state(app) == before


def test_a_full_shared_pool_refuses_the_vm(app: Any, world: World, image_dirs):
    image(world, image_dirs)
    pool(world, "tiny", capacity_gib=30, is_default=True)
    for host in ("hv1", "hv2", "hv3"):
        reach(world, host, ["tiny"])
    before = db_state(app)
    problem = assert_problem(world.admin_a.post("/v1/vms", json={"name": "big", "flavor": "medium", "image": "base"}),
                             409, "insufficient-storage")
    assert problem["pool"] == {"name": "tiny", "capacity_gib": 30, "allocated_gib": 0, "requested_gib": 40}
    assert db_state(app) == before


def test_a_local_pool_keeps_the_disk_on_the_host(world: World, image_dirs):
    image(world, image_dirs)
    pool(world, "local", kind="local", is_default=True)
    r = world.admin_a.post("/v1/vms", json={"name": "db", "flavor": "medium", "image": "base"})
    assert r.status_code == 202, r.get_json()
    host = r.get_json()["vm"]["host_id"]
    used = {h["id"]: h["usage"]["allocated"]["disk_gib"] for h in world.operator.get("/v1/hosts").get_json()["items"]}
    assert used[host] == 40


@pytest.mark.parametrize("body, field", [
    ({"name": "p", "kind": "shared"}, "capacity_gib"),
    ({"name": "p", "kind": "local", "capacity_gib": 10}, "capacity_gib"),
    ({"name": "p", "kind": "nfs", "capacity_gib": 10}, "kind"),
    ({"name": "", "kind": "local"}, "name"),
])
def test_bad_pools_are_refused(app: Any, world: World, body: dict[str, Any], field: str):
    before = db_state(app)
    assert field in assert_problem(world.operator.post("/v1/storage-pools", json=body), 422)["errors"]
    assert db_state(app) == before


def test_pools_are_the_operators_and_in_use_ones_stay(app: Any, world: World, image_dirs):
    assert_problem(world.admin_a.post("/v1/storage-pools", json={"name": "x", "kind": "local"}), 403)
    image(world, image_dirs)
    p = pool(world, "keep", is_default=True)
    reach(world, "hv1", ["keep"])
    etag = world.operator.get(f"/v1/hosts/{world.hosts['hv2']}").headers["ETag"]
    assert_problem(world.operator.patch(f"/v1/hosts/{world.hosts['hv2']}", json={"storage_pools": ["nope"]},
                                        headers={"If-Match": etag}), 422)
    assert_problem(world.operator.delete(f"/v1/storage-pools/{p['id']}"), 409, "conflict")  # hv1 lists it
    r = world.admin_a.post("/v1/vms", json={"name": "a", "flavor": "small", "image": "base"})
    world.admin_a.wait_op(r.get_json()["operation_id"])
    etag = world.operator.get(f"/v1/storage-pools/{p['id']}").headers["ETag"]
    assert_problem(world.operator.patch(f"/v1/storage-pools/{p['id']}", json={"capacity_gib": 5},
                                        headers={"If-Match": etag}), 409, "conflict")  # holds 10 GiB


def test_a_drain_moves_a_vm_only_to_a_host_that_reaches_its_pool(world: World, image_dirs):
    image(world, image_dirs)
    pool(world, "nfs-c", is_default=True)
    reach(world, "hv1", ["nfs-c"])
    reach(world, "hv2", ["nfs-c"])
    r = world.operator.post("/v1/vms", json={"name": "app", "flavor": "small", "image": "base",
                                             "tenant_id": world.tenant_a, "host": "hv1"})
    world.operator.wait_op(r.get_json()["operation_id"])
    vm_id = r.get_json()["vm"]["id"]
    r = world.operator.post("/v1/hosts/hv1/maintenance", json={"enabled": True, "reason": "test"})
    assert r.status_code == 200, r.get_json()
    plan = world.operator.get("/v1/plans?kind=drain").get_json()["items"][0]
    world.operator.wait_op(plan["operation_id"], timeout=60)
    assert world.operator.get(f"/v1/vms/{vm_id}").get_json()["host_id"] == world.hosts["hv2"]  # hv3: no nfs-c


def test_a_local_root_disk_is_part_of_a_migrations_cost(world: World, image_dirs):
    image(world, image_dirs)
    pool(world, "local", kind="local", is_default=True)
    r = world.operator.post("/v1/vms", json={"name": "db", "flavor": "small", "image": "base",
                                             "tenant_id": world.tenant_a, "host": "hv1"})
    world.operator.wait_op(r.get_json()["operation_id"])
    world.operator.post("/v1/hosts/hv1/maintenance", json={"enabled": True})
    plan = world.operator.get("/v1/plans?kind=drain").get_json()["items"][0]
    detail = world.operator.get(f"/v1/plans/{plan['id']}").get_json()
    assert detail["cost_ram_mib"] == 1024 + 10 * 1024  # its RAM and its 10 GiB local disk


def test_a_pool_can_make_root_disks_full_copies(app: Any, world: World, image_dirs):
    from controlplane.core.drivers import spec_for
    from controlplane.db import db
    from controlplane.models import VM

    image(world, image_dirs)
    pool(world, "copies", is_default=True, full_copy=True)
    reach(world, "hv1", ["copies"])
    overlay = pool(world, "overlays")
    reach(world, "hv2", ["overlays"])
    r1 = world.admin_a.post("/v1/vms", json={"name": "a", "flavor": "small", "image": "base"})
    r2 = world.admin_a.post("/v1/vms", json={"name": "b", "flavor": "small", "image": "base", "pool": "overlays"})
    assert overlay["full_copy"] is False
    with app.app_context():
        full = spec_for(db.session.get(VM, r1.get_json()["vm"]["id"])).disks[0]
        cow = spec_for(db.session.get(VM, r2.get_json()["vm"]["id"])).disks[0]
        db.session.rollback()
    assert (full.pool, full.full_copy, full.size_gib) == ("copies", True, 10)
    assert (cow.pool, cow.full_copy) == ("overlays", False)
    for r in (r1, r2):
        world.admin_a.wait_op(r.get_json()["operation_id"])
