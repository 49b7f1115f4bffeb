"""Live migration of VMs with disks: local disks need ``with-local-disks``, shared ones do not."""

from __future__ import annotations

import pytest

from agents.base import DiskSpec
from agents.errors import InvalidState
from tests.integration.proxmox.conftest import Pve


def _log(pve: Pve, vmid: object) -> list[str]:
    [task] = [t for t in pve.data("GET", "nodes/pve1/tasks", params={"typefilter": "qmigrate"}) if t["id"] == str(vmid)]
    return [line["t"] for line in pve.data("GET", f"nodes/pve1/tasks/{task['upid']}/log")]


def _volids(pve: Pve, node: str, storage: str = "local-lvm") -> set[str]:
    return {v["volid"] for v in pve.data("GET", f"nodes/{node}/storage/{storage}/content")}


def test_local_disks_are_migrated_with_local_disks(pve: Pve, make_driver, disk_spec):
    src, dst = make_driver("pve1"), make_driver("pve2")
    s = disk_spec()
    info = src.create(s)
    src.start(s.vm_id)
    src.attach_disk(s.vm_id, DiskSpec("vol-m", 1))
    vmid = info.native_id
    local = {f"local-lvm:vm-{vmid}-disk-0", f"local-lvm:vm-{vmid}-disk-1", f"local-lvm:vm-{vmid}-cloudinit"}
    pre = pve.data("GET", f"nodes/pve1/qemu/{vmid}/migrate", params={"target": "pve2"})
    assert {d["volid"] for d in pre["local_disks"]} == local
    src.migrate(s.vm_id, dst, timeout_s=30)
    log = _log(pve, vmid)
    assert "starting storage migration of 'scsi0'" in log and "starting storage migration of 'scsi1'" in log
    moved = dst.get(s.vm_id)
    assert moved is not None and moved.state.value == "running" and moved.volumes == (s.disks[0].volume_id, "vol-m")
    assert local <= _volids(pve, "pve2") and not local & _volids(pve, "pve1")


def test_without_local_disk_migration_the_vm_stays(pve: Pve, make_driver, disk_spec):
    src = make_driver("pve1", local_disk_migration="false")
    s = disk_spec()
    src.create(s)
    src.start(s.vm_id)
    with pytest.raises(InvalidState, match="local_disk_migration is off") as caught:
        src.migrate(s.vm_id, make_driver("pve2"), timeout_s=30)
    assert caught.value.code == "MIGRATE_UNSAFE" and src.get(s.vm_id) is not None


def test_disks_on_shared_storage_migrate_without_a_copy(pve: Pve, make_driver, disk_spec):
    opts = {"pools": "shared=ceph"}
    src, dst = make_driver("pve1", **opts), make_driver("pve2", **opts)
    s = disk_spec(pool="shared")
    info = src.create(s)
    src.start(s.vm_id)
    src.attach_disk(s.vm_id, DiskSpec("vol-s", 1, pool="shared"))
    pre = pve.data("GET", f"nodes/pve1/qemu/{info.native_id}/migrate", params={"target": "pve2"})
    assert pre["local_disks"] == []
    src.migrate(s.vm_id, dst, timeout_s=30)
    assert not [line for line in _log(pve, info.native_id) if "local disk" in line or "storage migration" in line]
    moved = dst.get(s.vm_id)
    assert moved is not None and moved.volumes == (s.disks[0].volume_id, "vol-s")
    vmid = info.native_id
    ours = {f"ceph:vm-{vmid}-disk-0", f"ceph:vm-{vmid}-disk-1", f"ceph:vm-{vmid}-cloudinit"}
    assert ours <= _volids(pve, "pve2", "ceph") == _volids(pve, "pve1", "ceph")  # shared: seen from both nodes
