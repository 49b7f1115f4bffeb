"""Data volumes on Proxmox: the holder VM that keeps detached volumes, interrupted hand-overs, config locks,
growing, and resizing a running VM (pending until its next start)."""

from __future__ import annotations

import threading
import time

import pytest

from agents.base import DiskSpec
from agents.errors import DriverError, InvalidState, NotFound
from agents.proxmox_meta import HOLDER_NAME, read_volumes
from tests.integration.proxmox.conftest import Pve


def _holders(pve: Pve, node: str = "pve1") -> list[dict]:
    return [v for v in pve.data("GET", f"nodes/{node}/qemu") if v["name"] == HOLDER_NAME]


def _config(pve: Pve, vmid: object, node: str = "pve1") -> dict:
    return dict(pve.data("GET", f"nodes/{node}/qemu/{vmid}/config"))


def _volids(pve: Pve, node: str = "pve1") -> list[str]:
    return [v["volid"] for v in pve.data("GET", f"nodes/{node}/storage/local-lvm/content")]


def test_a_detached_volume_waits_in_the_holder_vm_and_moves_to_the_next_vm(pve: Pve, make_driver, disk_spec):
    drv = make_driver()
    first, second = disk_spec(), disk_spec()
    drv.create(first)
    drv.start(first.vm_id)
    vol = DiskSpec("vol-data-1", 3)
    attached = drv.attach_disk(first.vm_id, vol)
    vmid = drv.get(first.vm_id).native_id  # type: ignore[union-attr]
    assert (attached.device, attached.native_id, attached.size_gib) == ("scsi1", f"local-lvm:vm-{vmid}-disk-1", 3)
    assert _holders(pve) == []

    drv.detach_disk(first.vm_id, vol)
    [holder] = _holders(pve)
    hcfg = _config(pve, holder["vmid"])
    assert holder["status"] == "stopped" and "confluencia:holder=pve1" in hcfg["description"]
    assert read_volumes(hcfg["description"]) == {"vol-data-1": "scsi0"}
    assert hcfg["scsi0"] == f"local-lvm:vm-{holder['vmid']}-disk-0,size=3G"  # renamed for its new owner
    cfg = _config(pve, vmid)
    assert "scsi1" not in cfg and not [k for k in cfg if k.startswith("unused")]
    assert read_volumes(cfg["description"]) == {first.disks[0].volume_id: "scsi0"}
    assert [d.vm_id for d in drv.list_domains()] == [first.vm_id]  # the holder is no domain

    drv.delete(first.vm_id)
    assert f"local-lvm:vm-{holder['vmid']}-disk-0" in _volids(pve)
    assert drv.grow_disk(None, DiskSpec("vol-data-1", 5)).size_gib == 5  # grown where it is kept

    drv.create(second)
    moved = drv.attach_disk(second.vm_id, vol)
    vmid2 = drv.get(second.vm_id).native_id  # type: ignore[union-attr]
    assert (moved.device, moved.size_gib, moved.native_id) == ("scsi1", 5, f"local-lvm:vm-{vmid2}-disk-1")
    assert read_volumes(_config(pve, holder["vmid"])["description"]) == {}
    assert drv.get(second.vm_id).volumes == (second.disks[0].volume_id, "vol-data-1")  # type: ignore[union-attr]

    drv.detach_disk(second.vm_id, vol)
    drv.delete_disk(vol)
    assert not [v for v in _volids(pve) if v.startswith(f"local-lvm:vm-{holder['vmid']}-")]
    drv.delete_disk(vol)  # gone: success


def test_an_interrupted_hand_over_is_finished_before_the_vm_is_deleted(pve: Pve, make_driver, disk_spec):
    drv = make_driver()
    s = disk_spec()
    info = drv.create(s)
    vol = DiskSpec("vol-crash", 1)
    volid = drv.attach_disk(s.vm_id, vol).native_id
    pve.cluster.faults.fail_types["qmmove"] = "storage rename failed: connection reset"
    with pytest.raises(DriverError, match="storage rename failed"):
        drv.detach_disk(s.vm_id, vol)
    cfg = _config(pve, info.native_id)
    assert cfg["unused0"] == volid and read_volumes(cfg["description"])["vol-crash"] == volid
    assert drv.get(s.vm_id).volumes == (s.disks[0].volume_id,)  # type: ignore[union-attr]
    drv.delete(s.vm_id)  # hands the volume over first: it survives the VM
    [holder] = _holders(pve)
    assert read_volumes(_config(pve, holder["vmid"])["description"]) == {"vol-crash": "scsi0"}
    other = disk_spec()
    drv.create(other)
    assert drv.attach_disk(other.vm_id, vol).size_gib == 1


def test_delete_disk_refuses_an_attached_volume_and_finishes_a_hand_over(pve: Pve, make_driver, disk_spec):
    drv = make_driver()
    s = disk_spec()
    info = drv.create(s)
    vol = DiskSpec("vol-x", 1)
    volid = drv.attach_disk(s.vm_id, vol).native_id
    with pytest.raises(InvalidState, match="attached to VM"):
        drv.delete_disk(vol)
    with pytest.raises(InvalidState, match="root disk"):
        drv.detach_disk(s.vm_id, s.disks[0])
    pve.cluster.faults.fail_types["qmmove"] = "interrupted"
    with pytest.raises(DriverError):
        drv.detach_disk(s.vm_id, vol)
    drv.delete_disk(vol)  # still an unused volume of the VM: handed over, then destroyed
    assert volid not in _volids(pve) and "unused0" not in _config(pve, info.native_id)
    assert [v for v in _volids(pve) if "disk-0" not in v] == [f"local-lvm:vm-{info.native_id}-cloudinit"]


def test_a_volume_detached_on_another_node_is_not_found_here(pve: Pve, make_driver, disk_spec):
    d1, d2 = make_driver("pve1"), make_driver("pve2")
    s1, s2 = disk_spec(), disk_spec()
    d1.create(s1)
    d2.create(s2)
    vol = DiskSpec("vol-roam", 1)
    known = DiskSpec("vol-roam", 1, native_id=d1.attach_disk(s1.vm_id, vol).native_id)
    d1.detach_disk(s1.vm_id, known)
    with pytest.raises(NotFound, match="only between VMs of one node"):
        d2.attach_disk(s2.vm_id, known)
    d2.delete_disk(known)  # not on this node: nothing to do
    assert _holders(pve, "pve1") and not _holders(pve, "pve2")


def test_disk_operations_wait_for_the_config_lock_of_another_task(pve: Pve, make_driver, disk_spec):
    drv = make_driver()
    s = disk_spec()
    info = drv.create(s)
    vmid = int(info.native_id or 0)
    pve.cluster.faults.clone_lock_wait_s = 0.1
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with pve.cluster.hold_file_lock(vmid):
            held.set()
            time.sleep(0.8)  # the duration of someone else's long disk task holding lock-N.conf
        done.set()

    before = pve.cluster.lock_timeouts
    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        attached = drv.attach_disk(s.vm_id, DiskSpec("vol-wait", 1))
    finally:
        holder.join()
    assert done.is_set() and attached.device == "scsi1"
    assert pve.cluster.lock_timeouts > before  # refused with "can't lock file ... got timeout", retried


def test_resize_of_a_running_vm_is_pending_until_its_next_start(pve: Pve, make_driver, disk_spec):
    drv = make_driver()
    s = disk_spec(vcpus=1, ram_mib=512)
    info = drv.create(s)
    drv.start(s.vm_id)
    bigger = drv.resize(s.vm_id, 2, 1024)
    assert bigger.vcpus == 2 and bigger.ram_mib == 512  # the guest keeps its RAM until it starts again
    pending = {p["key"]: p for p in pve.data("GET", f"nodes/pve1/qemu/{info.native_id}/pending")}
    assert (pending["cores"]["value"], pending["cores"]["pending"]) == ("1", "2")
    assert pending["memory"]["pending"] == "1024"
    assert _config(pve, info.native_id)["cores"] == 2
    assert pve.data("GET", f"nodes/pve1/qemu/{info.native_id}/config", params={"current": 1})["cores"] == 1
    drv.stop(s.vm_id, timeout_s=5)
    after = drv.start(s.vm_id)
    assert (after.vcpus, after.ram_mib) == (2, 1024)
    assert "pending" not in str(pve.data("GET", f"nodes/pve1/qemu/{info.native_id}/pending"))


def test_growing_the_root_disk_records_its_size(pve: Pve, make_driver, disk_spec):
    drv = make_driver()
    s = disk_spec(root_gib=2)
    drv.create(s)
    grown = drv.grow_disk(s.vm_id, DiskSpec(s.disks[0].volume_id, 6))
    assert (grown.device, grown.size_gib, grown.attached_to) == ("scsi0", 6, s.vm_id)
    info = drv.get(s.vm_id)
    assert info is not None and info.disk_gib == 6
    assert drv.grow_disk(s.vm_id, DiskSpec(s.disks[0].volume_id, 3)).size_gib == 6  # never shrinks


def test_a_volume_attached_to_one_vm_is_not_made_again_for_another(pve: Pve, make_driver, disk_spec):
    drv = make_driver()
    a, b = disk_spec(), disk_spec()
    drv.create(a)
    drv.create(b)
    vol = DiskSpec("vol-once", 1)
    drv.attach_disk(a.vm_id, vol)
    with pytest.raises(InvalidState, match=f"is on VM '{a.vm_id}'"):
        drv.attach_disk(b.vm_id, vol)
    assert drv.get(b.vm_id).volumes == (b.disks[0].volume_id,)  # type: ignore[union-attr]
