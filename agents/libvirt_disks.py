"""Disks, seed, size and console of the libvirt driver's domains (functions of an open connection).

File names on the host: the root disk ``<vm_id>-root.qcow2`` (a qcow2 overlay on the image volume, or a
full copy), the NoCloud seed ``<vm_id>-seed.iso`` and the serial console log ``<vm_id>-console.log`` in the
root disk's pool; a data volume ``<volume_id>.qcow2`` in its own pool. Our metadata lists the volumes (our
id, pool, file name), root first; a domain without them is diskless and has none of these operations.
"""

from __future__ import annotations

import contextlib
import os.path
import time
import xml.etree.ElementTree as ET
from dataclasses import replace
from typing import Any

from agents import libvirt_storage as storage
from agents.base import ConsoleEndpoint, DiskInfo, DiskSpec, ImageRef, VMSpec
from agents.cloudinit import seed_iso
from agents.errors import DriverError, InvalidState, OperationTimeout
from agents.libvirt_devices import DiskDevice, Layout, disk_xml, disks_of, next_target, vnc_port
from agents.libvirt_domains import metadata_of
from agents.libvirt_options import DriverOptions
from agents.libvirt_xml import METADATA_NS, METADATA_PREFIX, OurMetadata, VolumeRef, metadata_xml

GIB = storage.GIB
DETACH_TIMEOUT_S = 60.0  # a running guest has this long to release a hot-unplugged disk
DETACH_ASK_AGAIN_S = 2.0  # a detach request not answered in this long (after libvirt's own 5 s) is repeated
POLL_S = 0.2


def _lv() -> Any:
    import libvirt  # optional extra: only hosts that use the libvirt driver need libvirt-python

    return libvirt


def root_name(vm_id: str) -> str:
    return f"{vm_id}-root.qcow2"


def seed_name(vm_id: str) -> str:
    return f"{vm_id}-seed.iso"


def log_name(vm_id: str) -> str:
    return f"{vm_id}-console.log"


def data_name(volume_id: str) -> str:
    if not volume_id or "/" in volume_id or volume_id.startswith("."):
        raise DriverError(f"volume id {volume_id!r} cannot name a file", code="INVALID_ARG")
    return f"{volume_id}.qcow2"


# -- metadata ---------------------------------------------------------------------------------------


def set_metadata(dom: Any, meta: OurMetadata) -> None:
    """Our metadata in the persistent definition and, when it runs, the live domain."""
    lv = _lv()
    flags = lv.VIR_DOMAIN_AFFECT_CONFIG | (lv.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0)
    dom.setMetadata(lv.VIR_DOMAIN_METADATA_ELEMENT, metadata_xml(meta), METADATA_PREFIX, METADATA_NS, flags)


def with_disks(dom: Any, host: str) -> tuple[OurMetadata, VolumeRef]:
    """Our metadata of a domain with disks and its root disk; ``InvalidState`` for a diskless or foreign one."""
    meta = metadata_of(dom)
    if meta is None or meta.root is None:
        what = "not created by Confluencia" if meta is None else "diskless"
        raise InvalidState(f"domain {dom.name()} on {host} is {what}: it has no disks", host=host,
                           code="OPERATION_INVALID")  # fmt: skip
    return meta, meta.root


# -- create ---------------------------------------------------------------------------------------------


def layout_for(spec: VMSpec, opts: DriverOptions) -> tuple[Layout, tuple[VolumeRef, ...]]:
    """Where the disks, seed and console log of ``spec`` go on this host, and the volumes for our metadata."""
    root, *data = spec.disks
    for disk in spec.disks:
        opts.storage.check(disk.pool, "this host")
    if root.image is None:
        raise DriverError(f"root disk {root.volume_id} of {spec.vm_id} has no image", code="INVALID_ARG")
    names = {root.volume_id, *(d.volume_id for d in data)}
    if len(names) != len(spec.disks) or root_name(spec.vm_id) in {data_name(d.volume_id) for d in data}:
        raise DriverError(f"{spec.vm_id}: a volume id is given twice or names the root disk", code="INVALID_ARG")
    root_dir = opts.storage.dir_of(root.pool)
    refs = (VolumeRef(root.volume_id, root.pool, root_name(spec.vm_id)),
            *(VolumeRef(d.volume_id, d.pool, data_name(d.volume_id)) for d in data))  # fmt: skip
    nets = spec.cloud_init.networks if spec.cloud_init else ()
    layout = Layout(
        root=os.path.join(root_dir, refs[0].name),
        data=tuple((os.path.join(opts.storage.dir_of(r.pool), r.name), r.volume_id) for r in refs[1:]),
        seed=os.path.join(root_dir, seed_name(spec.vm_id)) if spec.cloud_init else None,
        serial_log=os.path.join(root_dir, log_name(spec.vm_id)) if opts.serial_log else None,
        vnc_listen=opts.vnc_listen,
        nic=opts.nic,
        mac=nets[0].mac if nets else None,
    )
    return layout, refs


def make_root(conn: Any, opts: DriverOptions, vm_id: str, disk: DiskSpec, image: ImageRef) -> Any:
    """The root volume: an overlay on the image volume (or a full copy) of ``disk.size_gib``."""
    img = storage.ensure_image(conn, opts.storage, image)
    size = disk.size_gib * GIB
    if size < storage.capacity(img):
        raise DriverError(f"root disk of {vm_id}: {disk.size_gib} GiB is smaller than image {image.image_id}",
                          code="INVALID_ARG")  # fmt: skip
    p = storage.pool(conn, opts.storage, disk.pool)
    if disk.full_copy:
        vol, _ = storage.create(p, root_name(vm_id), size, clone_of=img)
        if storage.capacity(vol) < size:
            vol.resize(size, 0)
        return vol
    return storage.create(p, root_name(vm_id), size, backing=(img.path(), image.format))[0]


def build_storage(conn: Any, opts: DriverOptions, spec: VMSpec, *, running: bool) -> None:
    """Every file ``spec`` needs on this host (what exists is kept; the seed is rewritten unless it runs)."""
    root, *data = spec.disks
    assert root.image is not None  # layout_for checked it
    make_root(conn, opts, spec.vm_id, root, root.image)
    for disk in data:
        storage.create(storage.pool(conn, opts.storage, disk.pool), data_name(disk.volume_id), disk.size_gib * GIB)
    p = storage.pool(conn, opts.storage, root.pool)
    if spec.cloud_init is not None and not running:
        storage.put_bytes(conn, p, seed_name(spec.vm_id), seed_iso(spec.cloud_init))
    if opts.serial_log:
        storage.create(p, log_name(spec.vm_id), 0, fmt="raw")  # 0660 now: libvirt would make it 0600


def remove_vm_files(conn: Any, opts: DriverOptions, vm_id: str, meta: OurMetadata | None) -> None:
    """Root disk, seed and console log of ``vm_id`` (never a data volume). Without our metadata (the domain
    is gone) only host-local pools are cleaned: a shared pool's files may belong to it on another host."""
    root = meta.root if meta is not None else None
    names = [root.pool] if root is not None else sorted(opts.storage.local_pools)
    for p in [p for name in names if name in opts.storage.pools and (p := storage.existing_pool(conn, name))]:
        for file in (root_name(vm_id), seed_name(vm_id), log_name(vm_id)):
            # without the domain: local pools only, whose files only this host's daemon makes (no refresh)
            storage.delete(p, file, fresh=root is not None)


# -- data volumes ------------------------------------------------------------------------------------


def _defs(dom: Any) -> tuple[list[DiskDevice], list[DiskDevice]]:
    """The disks of the running domain (empty when it does not run) and of its persistent definition."""
    lv = _lv()
    live = disks_of(dom.XMLDesc(0)) if dom.isActive() else []
    config = disks_of(dom.XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE)) if dom.isPersistent() else []
    return live, config


def _find(disks: list[DiskDevice], path: str) -> DiskDevice | None:
    return next((d for d in disks if d.path == path), None)


def users_of(conn: Any, path: str) -> list[str]:
    """The domains of this host whose running or persistent definition uses the file ``path``."""
    lv = _lv()
    out = []
    for dom in conn.listAllDomains(0):
        try:
            live, config = _defs(dom)
        except lv.libvirtError as exc:
            if exc.get_error_code() == lv.VIR_ERR_NO_DOMAIN:
                continue
            raise
        if _find(live, path) or _find(config, path):
            out.append(dom.name())
    return out


def _data_path(opts: DriverOptions, disk: DiskSpec) -> str:
    opts.storage.check(disk.pool, "this host")
    return os.path.join(opts.storage.dir_of(disk.pool), data_name(disk.volume_id))


def attach(conn: Any, dom: Any, opts: DriverOptions, disk: DiskSpec, host: str) -> DiskInfo:
    lv = _lv()
    meta, root = with_disks(dom, host)
    if disk.volume_id == root.volume_id or data_name(disk.volume_id) == root.name:
        raise InvalidState(f"{disk.volume_id} is the root disk of {dom.name()}", host=host, code="OPERATION_INVALID")
    path = _data_path(opts, disk)
    others = [u for u in users_of(conn, path) if u != dom.name()]
    if others:
        raise InvalidState(f"volume {disk.volume_id} is attached to {others[0]}", host=host, code="OPERATION_INVALID")
    vol, _ = storage.create(storage.pool(conn, opts.storage, disk.pool), data_name(disk.volume_id),
                            disk.size_gib * GIB)  # fmt: skip
    live, config = _defs(dom)
    found = _find(live, path) or _find(config, path)
    target = found.target if found else next_target({d.target for d in [*live, *config]})
    xml = disk_xml(path, target, serial=disk.volume_id)
    if dom.isActive() and not _find(live, path):
        dom.attachDeviceFlags(xml, lv.VIR_DOMAIN_AFFECT_LIVE)
    if dom.isPersistent() and not _find(config, path):
        dom.attachDeviceFlags(xml, lv.VIR_DOMAIN_AFFECT_CONFIG)
    set_metadata(dom, meta.with_volume(VolumeRef(disk.volume_id, disk.pool, data_name(disk.volume_id))))
    return DiskInfo(disk.volume_id, path, storage.capacity(vol) // GIB, target, dom.name())


def detach(dom: Any, opts: DriverOptions, disk: DiskSpec, host: str) -> None:
    lv = _lv()
    meta, root = with_disks(dom, host)
    if disk.volume_id == root.volume_id:
        raise InvalidState(f"the root disk of {dom.name()} cannot be detached", host=host, code="OPERATION_INVALID")
    path = _data_path(opts, disk)
    live, config = _defs(dom)
    found = _find(live, path)
    if found is not None:
        deadline = time.monotonic() + DETACH_TIMEOUT_S
        asked = 0.0
        while dom.isActive() and _find(disks_of(dom.XMLDesc(0)), path):
            if time.monotonic() > deadline:
                raise OperationTimeout(f"the guest {dom.name()} did not release {disk.volume_id} within "
                                       f"{DETACH_TIMEOUT_S:.0f} s", host=host)  # fmt: skip
            if time.monotonic() - asked > DETACH_ASK_AGAIN_S:
                # Asked again: a request made while the guest was still booting is lost (measured: the
                # guest releases the disk at once after a second request). libvirt waits 5 s for each.
                with contextlib.suppress(lv.libvirtError):  # "already being removed": wait for it
                    dom.detachDeviceFlags(disk_xml(path, found.target), lv.VIR_DOMAIN_AFFECT_LIVE)
                asked = time.monotonic()
            else:
                time.sleep(POLL_S)  # polling for the guest to release the hot-unplugged disk
    found = _find(config, path)
    if found is not None:
        dom.detachDeviceFlags(disk_xml(path, found.target), lv.VIR_DOMAIN_AFFECT_CONFIG)
    if any(v.volume_id == disk.volume_id for v in meta.volumes):
        set_metadata(dom, meta.without_volume(disk.volume_id))


def grow(conn: Any, dom: Any | None, opts: DriverOptions, disk: DiskSpec, host: str) -> DiskInfo:
    """Grow the volume (``blockResize`` when a running guest has it); never shrink."""
    lv = _lv()
    meta = metadata_of(dom) if dom is not None else None
    ref = meta.root if meta is not None and meta.root and meta.root.volume_id == disk.volume_id else None
    pool_name, name = (ref.pool, ref.name) if ref is not None else (disk.pool, data_name(disk.volume_id))
    opts.storage.check(pool_name, host)
    p = storage.pool(conn, opts.storage, pool_name)
    vol = storage.require(p, name)
    path = vol.path()
    if dom is None:  # the caller did not say: the domain of this host that uses it, if any
        users = users_of(conn, path)
        dom = conn.lookupByName(users[0]) if users else None
    live, config = _defs(dom) if dom is not None else ([], [])
    device = _find(live, path) or _find(config, path)
    want = disk.size_gib * GIB
    if storage.capacity(vol) < want:
        if dom is not None and _find(live, path) is not None and device is not None:
            dom.blockResize(device.target, want, lv.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
        else:
            vol.resize(want, 0)
    size = storage.capacity(storage.require(p, name))
    return DiskInfo(disk.volume_id, path, size // GIB, device.target if device else None,
                    dom.name() if dom is not None and device is not None else None)  # fmt: skip


def delete_data(conn: Any, opts: DriverOptions, disk: DiskSpec, host: str) -> None:
    path = _data_path(opts, disk)
    users = users_of(conn, path)
    if users:
        raise InvalidState(f"volume {disk.volume_id} is attached to {users[0]}", host=host, code="OPERATION_INVALID")
    storage.delete(storage.pool(conn, opts.storage, disk.pool), data_name(disk.volume_id))


# -- size and console ------------------------------------------------------------------------------


def resize(conn: Any, dom: Any, vcpus: int, ram_mib: int, host: str) -> None:
    """vCPUs and RAM (current and maximum) in the persistent definition and our metadata."""
    lv = _lv()
    if vcpus < 1 or ram_mib < 1:
        raise DriverError(f"invalid size {vcpus} vCPUs, {ram_mib} MiB", host=host, code="INVALID_ARG")
    meta = metadata_of(dom, lv.VIR_DOMAIN_AFFECT_CONFIG) or metadata_of(dom)
    if meta is None:
        raise InvalidState(f"domain {dom.name()} was not created by Confluencia", host=host, code="OPERATION_DENIED")
    ET.register_namespace(METADATA_PREFIX, METADATA_NS)
    root = ET.fromstring(dom.XMLDesc(lv.VIR_DOMAIN_XML_INACTIVE | lv.VIR_DOMAIN_XML_SECURE))
    vcpu = root.find("vcpu")
    if vcpu is None:
        vcpu = ET.SubElement(root, "vcpu")
    vcpu.attrib.pop("current", None)
    vcpu.text = str(vcpus)
    for tag in ("memory", "currentMemory"):
        el = root.find(tag)
        if el is not None:
            el.attrib.clear()
            el.set("unit", "MiB")
            el.text = str(ram_mib)
    conn.defineXML(ET.tostring(root, encoding="unicode"))
    if (meta.vcpus, meta.ram_mib) != (vcpus, ram_mib):
        set_metadata(conn.lookupByName(dom.name()), replace(meta, vcpus=vcpus, ram_mib=ram_mib))


def console(dom: Any, opts: DriverOptions, host: str) -> ConsoleEndpoint:
    if not dom.isActive():
        raise InvalidState(f"domain {dom.name()} is not running: no console", host=host, code="OPERATION_INVALID")
    port = vnc_port(dom.XMLDesc(0))
    if port is None:
        raise InvalidState(f"domain {dom.name()} has no VNC console", host=host, code="NO_SUPPORT")
    return ConsoleEndpoint(host=opts.console_host, port=port)
