"""Data volumes of our Proxmox VMs: attach, detach, grow and delete, each idempotent.

A new data volume is allocated by ``POST .../config`` with ``scsiN=<storage>:<GiB>`` and, in the same write,
the VM's volume map (``confluencia:volumes=``, see :mod:`agents.proxmox_meta`) gets ``<volume id>@scsiN``;
:class:`DiskInfo` ``.native_id`` is the PVE volid. ``detach_disk`` deletes ``scsiN`` from the config (the
running guest loses it at once: disks are hot-unplugged; PVE keeps the volume as ``unusedN``) and hands
the volume to the node's holder VM (:mod:`agents.proxmox_volumes`), so that deleting the VM keeps it;
``attach_disk`` brings it back from there with ``move_disk``. ``grow_disk`` is ``PUT .../resize`` (live on a
running guest; never shrinks: PVE refuses that, so a larger volume is left alone). ``delete_disk`` unlinks a
held volume (``PUT .../unlink`` with ``force``), which destroys it.
"""

from __future__ import annotations

import math

from agents.base import DiskInfo, DiskSpec
from agents.errors import DriverError, InvalidState, NotFound
from agents.proxmox_meta import (
    DRIVE,
    GIB,
    HOLDER_NAME,
    drive_volid,
    is_candidate,
    parse_description,
    read_volumes,
    size_bytes,
    with_spec,
)
from agents.proxmox_node import Entry, ProxmoxNode
from agents.proxmox_storage import Storages
from agents.proxmox_volumes import SLOTS, Volumes

ROOT = "scsi0"


def _gib(drive: str) -> int:
    return math.ceil(size_bytes(drive) / GIB)


class Disks:
    def __init__(self, node: ProxmoxNode, storages: Storages) -> None:
        self.node = node
        self.storages = storages
        self.client = node.client
        self.book = Volumes(node)

    def _info(self, volume_id: str, cfg: Entry, slot: str, vm_id: str | None) -> DiskInfo:
        drive = str(cfg[slot])
        device = slot if vm_id is not None else None
        return DiskInfo(volume_id, drive_volid(drive), _gib(drive), device=device, attached_to=vm_id)

    def _require(self, vm_id: str) -> tuple[int, Entry]:
        entry, cfg = self.node.require(vm_id)
        return int(entry["vmid"]), cfg

    # ---- attach --------------------------------------------------------------------------------------------
    def attach(self, vm_id: str, disk: DiskSpec) -> DiskInfo:
        vol = disk.volume_id
        with self.node.lock("vm", vm_id):
            vmid, cfg = self._require(vm_id)
            mapping = read_volumes(cfg.get("description"))
            where = mapping.get(vol)
            if where is not None and where in cfg:
                return self._info(vol, cfg, where, vm_id)  # attached already
            if where is not None and ":" in where:  # detached here and not handed over yet: finish that first
                self.settle(vm_id, vmid)
                vmid, cfg = self._require(vm_id)
                mapping = read_volumes(cfg.get("description"))
            if where in SLOTS and where not in cfg:
                slot = where  # announced by an interrupted attach
            else:
                claimed = set(mapping.values())
                slot = next((s for s in SLOTS[1:] if s not in cfg and s not in claimed), "")
                if not slot:
                    raise InvalidState(f"VM {vm_id!r} has no free SCSI slot", host=self.node.uri, code="NO_SLOT")

            def claim(m: dict[str, str]) -> None:
                m[vol] = slot

            with self.book.holder_lock():
                held = self.book.held(vol)
                if held is not None:
                    hvmid, hslot, _ = held
                    self.book.edit(vmid, claim, f"attach of {vol} to {vm_id}")
                    self.book.move(hvmid, hslot, vmid, slot, f"attach of {vol} to {vm_id}")
                    self.book.edit(hvmid, lambda m: m.pop(vol, None), f"release of {vol} by holder {hvmid}")
                elif disk.native_id is not None:
                    raise NotFound(
                        f"volume {vol!r} ({disk.native_id}) is not kept on node {self.node.name}: Proxmox moves "
                        "disks only between VMs of one node; attach it on the node where it was detached",
                        host=self.node.uri,
                        code="NO_VOLUME",
                    )
                else:
                    user = self._user_of(vol)  # a new volume id must not be on another of our VMs already
                    if user is not None:
                        raise InvalidState(
                            f"volume {vol!r} is on VM {user[0]!r} ({'attached' if user[1] else 'being detached'})",
                            host=self.node.uri,
                            code="ATTACHED",
                        )
                    new = {slot: f"{self.storages.storage(disk.pool)}:{disk.size_gib}"}
                    self.book.edit(vmid, claim, f"attach of new volume {vol} to {vm_id}", extra=new, task=True)
            cfg = self.node.config(vmid)
            if slot not in cfg:
                raise DriverError(f"attach of {vol} to {vm_id} ended without {slot}", host=self.node.uri)
            return self._info(vol, cfg, slot, vm_id)

    # ---- detach --------------------------------------------------------------------------------------------
    def detach(self, vm_id: str, disk: DiskSpec) -> None:
        vol = disk.volume_id
        with self.node.lock("vm", vm_id):
            vmid, cfg = self._require(vm_id)
            where = read_volumes(cfg.get("description")).get(vol)
            if where == ROOT:
                raise InvalidState(
                    f"{vol!r} is the root disk of {vm_id!r}: it cannot be detached", host=self.node.uri, code="ROOT"
                )
            if where is not None and DRIVE.match(where) and where in cfg:
                volid = drive_volid(str(cfg[where]))

                def forget(m: dict[str, str]) -> None:
                    m[vol] = volid  # now an unusedN of this VM, until the holder has it

                self.book.edit(vmid, forget, f"detach of {vol} from {vm_id}", extra={"delete": where})
            self.settle(vm_id, vmid)

    def settle(self, vm_id: str, vmid: int) -> None:
        """Hand every volume detached from VM ``vmid`` (an ``unusedN`` our map names by volid) to the node's
        holder. The caller holds the VM's lock."""
        cfg = self.node.config(vmid)
        for vol, where in read_volumes(cfg.get("description")).items():
            if ":" not in where:
                continue
            unused = next((k for k, v in cfg.items() if k.startswith("unused") and drive_volid(str(v)) == where), None)
            if unused is not None:
                with self.book.holder_lock():
                    hvmid, hslot = self.book.free_slot(vol)

                    def hold(m: dict[str, str], vol: str = vol, hslot: str = hslot) -> None:
                        for other in [k for k, s in m.items() if s == hslot and k != vol]:
                            del m[other]  # a stale announcement for that slot
                        m[vol] = hslot

                    self.book.edit(hvmid, hold, f"keeping {vol} in holder {hvmid}")
                    self.book.move(vmid, unused, hvmid, hslot, f"hand-over of {vol} from {vm_id} to holder {hvmid}")

            def drop(m: dict[str, str], vol: str = vol) -> None:
                m.pop(vol, None)

            self.book.edit(vmid, drop, f"hand-over of {vol} from {vm_id}")
            cfg = self.node.config(vmid)

    # ---- grow ----------------------------------------------------------------------------------------------
    def grow(self, vm_id: str | None, disk: DiskSpec) -> DiskInfo:
        with self.node.lock("vm", vm_id) if vm_id is not None else self.book.holder_lock():
            return self._grow(vm_id, disk)

    def _grow(self, vm_id: str | None, disk: DiskSpec) -> DiskInfo:
        vol = disk.volume_id
        where: tuple[int, str, str | None] | None = None
        if vm_id is not None:
            vmid, cfg = self._require(vm_id)
            slot = read_volumes(cfg.get("description")).get(vol)
            if slot is not None and slot in cfg and DRIVE.match(slot):
                where = (vmid, slot, vm_id)
        if where is None:
            held = self.book.held(vol)
            if held is None:
                raise NotFound(f"volume {vol!r} is not on node {self.node.name}", host=self.node.uri, code="NO_VOLUME")
            where = (held[0], held[1], None)  # detached: grown where the holder keeps it
        vmid, slot, owner = where
        cfg = self.node.config(vmid)
        if _gib(str(cfg[slot])) < disk.size_gib:
            path = self.node.qemu(vmid, "/resize")
            self.book.task(
                f"resize of {vol} to {disk.size_gib} GiB",
                lambda: self.client.call("PUT", path, disk=slot, size=f"{disk.size_gib}G"),
            )
            cfg = self.node.config(vmid)
            if owner is not None and slot == ROOT:
                self._record_root_size(vmid, cfg, _gib(str(cfg[slot])))
        return self._info(vol, cfg, slot, owner)

    def _record_root_size(self, vmid: int, cfg: Entry, gib: int) -> None:
        meta = parse_description(cfg.get("description"))
        if meta is not None and meta.disk_gib != gib:
            text = with_spec(cfg.get("description"), meta.vcpus, meta.ram_mib, gib)
            self.client.retry_locked(
                lambda: self.client.call("PUT", self.node.qemu(vmid, "/config"), description=text),
                f"record of the root disk size of VMID {vmid}",
            )

    # ---- delete --------------------------------------------------------------------------------------------
    def delete(self, disk: DiskSpec) -> None:
        vol = disk.volume_id
        for _ in range(2):
            with self.book.holder_lock():
                held = self.book.held(vol)
                if held is not None:
                    self._destroy(vol, held[0], held[1])
                    return
            user = self._user_of(vol)
            if user is None:
                return  # gone already
            vm_id, attached = user
            if attached:
                raise InvalidState(
                    f"volume {vol!r} is attached to VM {vm_id!r}: detach it first", host=self.node.uri, code="ATTACHED"
                )
            with self.node.lock("vm", vm_id):
                found = self.node.locate(vm_id)
                if found is not None:
                    self.settle(vm_id, int(found[0]["vmid"]))

    def _destroy(self, vol: str, hvmid: int, hslot: str) -> None:
        """Unlink with ``force``: the holder's drive and its volume are destroyed; then the map forgets it."""
        path = self.node.qemu(hvmid, "/unlink")
        self.client.retry_locked(lambda: self.client.call("PUT", path, idlist=hslot, force=1), f"delete of {vol}")
        self.book.edit(hvmid, lambda m: m.pop(vol, None), f"delete of volume {vol}")

    def _user_of(self, vol: str) -> tuple[str, bool] | None:
        """``(our VM id, attached)`` of the VM of this node whose map names ``vol`` in its config."""
        for entry in self.node.entries():
            if not is_candidate(entry) or entry.get("name") == HOLDER_NAME:
                continue
            try:
                cfg = self.node.config(entry["vmid"])
            except NotFound:
                continue
            meta = parse_description(cfg.get("description"))
            where = read_volumes(cfg.get("description")).get(vol)
            if meta is None or where is None:
                continue
            if where in cfg:
                return meta.vm_id, True
            if ":" in where and any(drive_volid(str(v)) == where for k, v in cfg.items() if k.startswith("unused")):
                return meta.vm_id, False
        return None
