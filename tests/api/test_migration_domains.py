"""Issue 16: plans, drains and manual migrations never propose a move across migration domains.

The VMs are built on simulated hosts, then the hosts' records are turned into two Proxmox VE clusters and a
libvirt host (draft plans reach no hypervisor): the placement engine would like the big empty libvirt host and the
other cluster's node, but a VM only moves between nodes of its own cluster.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from controlplane.core.domains import domain_name, move_label
from controlplane.db import db
from controlplane.models import VM, Host
from tests.api.test_plans import hosts_of, skew
from tests.conftest import World

# name -> (driver, uri, migration_domain)
LAYOUT = {"hv1": ("proxmox", "pve://10.0.0.1/hv1", None), "hv2": ("proxmox", "pve://10.0.0.1/hv2", None),
          "hv3": ("libvirt", "qemu+ssh://hv3/system", None), "hv4": ("proxmox", "pve://10.9.9.9/hv4", "sur")}


def _mixed_cluster(world: World, app: Any) -> dict[str, str]:
    """hv1, hv2: cluster 10.0.0.1 (by their endpoint); hv3: libvirt, the largest; hv4: cluster "sur". Six VMs on
    hv1 and one on hv3 and hv4."""
    r = world.operator.post("/v1/hosts", json={"name": "hv4", "driver": "simulated", "uri": "sim://hv4",
                                               "vcpus": 32, "ram_mib": 131072, "disk_gib": 2000})
    assert r.status_code == 201, r.get_json()
    world.hosts["hv4"] = r.get_json()["id"]
    from tests.conftest import wait_for
    wait_for(lambda: world.operator.get("/v1/hosts/hv4").get_json()["state"] == "enabled")
    skew(world, 6, host="hv1", flavor="medium")
    lone = {h: skew(world, 1, host=h, flavor="small")[0] for h in ("hv3", "hv4")}
    with app.app_context():
        for name, (driver, uri, domain) in LAYOUT.items():
            db.session.execute(sa.update(Host).where(Host.name == name)
                               .values(driver=driver, uri=uri, migration_domain=domain))
        db.session.commit()
    return lone


def _domain(hosts: dict[str, dict[str, Any]], host_id: str) -> tuple[str, str]:
    host = next(h for h in hosts.values() if h["id"] == host_id)
    return host["driver"], host["migration_domain"]


def test_hosts_show_their_migration_domain(world: World, app: Any) -> None:
    _mixed_cluster(world, app)
    hosts = hosts_of(world)
    assert {n: hosts[n]["migration_domain"] for n in LAYOUT} == {"hv1": "10.0.0.1", "hv2": "10.0.0.1",
                                                                  "hv3": "default", "hv4": "sur"}
    r = world.operator.patch("/v1/hosts/hv2", json={"migration_domain": "x" * 64},
                             headers={"If-Match": world.operator.get("/v1/hosts/hv2").headers["ETag"]})
    assert r.status_code == 422 and "migration_domain" in r.get_json()["errors"], r.get_json()


def test_a_rebalance_plan_moves_vms_only_inside_their_domain(world: World, app: Any) -> None:
    _mixed_cluster(world, app)
    hosts = hosts_of(world)
    plan = world.operator.post("/v1/plans", json={"kind": "rebalance"}).get_json()
    assert plan["moves"], plan  # hv1 -> hv2 helps the balance: the plan is not empty
    for move in plan["moves"]:
        assert _domain(hosts, move["source_host_id"]) == _domain(hosts, move["target_host_id"]), move
    assert {m["target_host_id"] for m in plan["moves"]} == {world.hosts["hv2"]}


def test_a_drain_reports_the_vms_no_host_of_their_domain_can_take(world: World, app: Any) -> None:
    lone = _mixed_cluster(world, app)
    drain = world.operator.post("/v1/plans", json={"kind": "drain", "host": "hv4"}).get_json()
    assert drain["moves"] == [] and list(drain["unplaced"]) == [lone["hv4"]], drain  # hv4 is alone in "sur"
    drain = world.operator.post("/v1/plans", json={"kind": "drain", "host": "hv1"}).get_json()
    assert len(drain["moves"]) == 6 and not drain["unplaced"], drain
    assert {m["target_host_id"] for m in drain["moves"]} == {world.hosts["hv2"]}


def test_a_manual_migration_across_domains_is_refused_and_changes_nothing(world: World, app: Any) -> None:
    lone = _mixed_cluster(world, app)
    on_hv1 = next(v["id"] for v in world.operator.get("/v1/vms?limit=100").get_json()["items"]
                  if v["host_id"] == world.hosts["hv1"])
    for target, words in (("hv4", "migration domains"), ("hv3", "between a proxmox and a libvirt host")):
        r = world.operator.post(f"/v1/vms/{on_hv1}/migrate", json={"host": target})
        assert r.status_code == 409 and words in r.get_json()["detail"], r.get_json()
        assert r.headers["Content-Type"] == "application/problem+json"
    r = world.operator.post(f"/v1/vms/{on_hv1}/migrate", json={"host": "hv3"}, headers={"Accept-Language": "es"})
    assert "No se puede migrar" in r.get_json()["detail"], r.get_json()
    assert world.operator.get(f"/v1/vms/{on_hv1}").get_json()["host_id"] == world.hosts["hv1"]
    assert world.operator.get("/v1/plans?kind=migrate").get_json()["total"] == 0
    assert lone


def test_libvirt_vms_with_local_disks_stay_among_copy_storage_peers() -> None:
    a = Host(name="a", driver="libvirt", uri="qemu+ssh://a/system", migration_domain="rack-1")
    pve = Host(name="p", driver="proxmox", uri="pve://192.0.2.7:8006/p", migration_domain=None)
    local = VM(name="l", image_id="img", pool_id=None)
    diskless = VM(name="d", image_id=None, pool_id=None)
    assert move_label(local, a, None) == "domain:libvirt:rack-1"
    assert move_label(diskless, a, None) == "driver:libvirt"  # nothing to copy: any libvirt host
    assert move_label(diskless, pve, None) == "domain:proxmox:192.0.2.7"  # Proxmox: never outside its cluster
    assert domain_name("libvirt", "qemu:///system", None) == "default"
    assert domain_name("proxmox", "not a uri", None) == "default"
