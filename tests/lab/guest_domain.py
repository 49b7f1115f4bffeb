"""Run the test guest (:mod:`tests.lab.guest_image`) as a real domain under a lab host's session daemon.

:func:`booted_guest` makes the guest's files in a directory of their own that belongs to the lab user (the
session daemon runs QEMU as that user: it must read the base image, which is world-readable in the cache,
and write the overlay and the serial log), defines and starts the domain and, whatever happens, destroys
and undefines it and removes the files afterwards.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from agents.libvirt_errors import silence_libvirt
from agents.libvirt_lab import LabHost
from tests.lab.guest_console import SerialLog
from tests.lab.guest_image import GuestImage, make_overlay, make_seed_iso

GUEST_ROOT = Path(os.environ.get("CONFLUENCIA_GUEST_DIR", "/var/tmp"))  # guests' disks, seeds, logs


@dataclass(frozen=True)
class Seed:
    """A NoCloud seed: meta-data is made from ``hostname`` and ``instance_id``."""

    hostname: str
    instance_id: str = ""
    user_data: str = "#cloud-config\n"
    network_config: str | None = None

    def meta_data(self) -> str:
        return f"instance-id: {self.instance_id or self.hostname}\nlocal-hostname: {self.hostname}\n"


@dataclass
class BootedGuest:
    name: str
    conn: Any  # libvirt.virConnect
    dom: Any  # libvirt.virDomain
    workdir: Path
    disk: Path
    serial: SerialLog
    started_at: float  # time.monotonic() just before the domain was started

    def running(self) -> bool:
        import libvirt  # optional extra

        try:
            return bool(self.dom.isActive())
        except libvirt.libvirtError:
            return False

    def live_xml(self) -> str:
        return str(self.dom.XMLDesc(0))

    def new_file(self, name: str, *, mode: int = 0o600) -> Path:
        """An empty file in the guest's directory, owned by the lab user (for a disk to attach, ...)."""
        path = self.workdir / name
        path.touch()
        st = self.workdir.stat()
        os.chown(path, st.st_uid, st.st_gid)
        path.chmod(mode)
        return path


def domain_xml(
    name: str,
    *,
    disk: Path,
    serial_log: Path,
    seed_iso: Path | None = None,
    ram_mib: int = 128,
    vcpus: int = 1,
    nic: str | None = None,
) -> str:
    """Domain XML for the test guest. ``nic``: None, ``"user"`` (QEMU's own NAT), or a bridge name."""
    cdrom = ""
    if seed_iso is not None:
        cdrom = f"""
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file={quoteattr(str(seed_iso))}/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>"""
    iface = ""
    if nic == "user":
        iface = "\n    <interface type='user'><model type='virtio'/></interface>"
    elif nic is not None:
        iface = f"\n    <interface type='bridge'><source bridge={quoteattr(nic)}/><model type='virtio'/></interface>"
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <uuid>{uuid.uuid4()}</uuid>
  <memory unit='MiB'>{ram_mib}</memory>
  <vcpu>{vcpus}</vcpu>
  <os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file={quoteattr(str(disk))}/>
      <target dev='vda' bus='virtio'/>
    </disk>{cdrom}{iface}
    <serial type='file'>
      <source path={quoteattr(str(serial_log))}/>
      <target port='0'/>
    </serial>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>
  </devices>
</domain>"""


def guest_dir(host: LabHost) -> Path:
    """A fresh directory owned by ``host``'s Unix user (mode 0700) for one guest's files."""
    pw = pwd.getpwnam(host.name)
    workdir = Path(tempfile.mkdtemp(prefix=f"confluencia-guest-{host.name}-", dir=GUEST_ROOT))
    os.chown(workdir, pw.pw_uid, pw.pw_gid)
    return workdir


@contextlib.contextmanager
def booted_guest(
    host: LabHost,
    image: GuestImage,
    seed: Seed | None,
    *,
    ram_mib: int = 128,
    nic: str | None = None,
    disk_bytes: int | None = None,
    name: str | None = None,
) -> Iterator[BootedGuest]:
    """Define and start the guest on ``host``; destroy, undefine and delete its files on exit."""
    import libvirt  # optional extra: only machines that run the lab need libvirt-python

    silence_libvirt()
    name = name or f"cf-guest-{uuid.uuid4().hex[:10]}"
    pw = pwd.getpwnam(host.name)
    workdir = guest_dir(host)
    conn = None
    dom = None
    try:
        disk = make_overlay(image.path, workdir / "root.qcow2", size_bytes=disk_bytes)
        seed_iso = None
        if seed is not None:
            seed_iso = make_seed_iso(
                workdir / "seed.iso",
                meta_data=seed.meta_data(),
                user_data=seed.user_data,
                network_config=seed.network_config,
            )
        serial_log = workdir / "serial.log"
        serial_log.touch()
        for path, mode in ((disk, 0o660), (serial_log, 0o660), (seed_iso, 0o440)):
            if path is not None:
                os.chown(path, pw.pw_uid, pw.pw_gid)
                path.chmod(mode)
        conn = libvirt.open(host.uri)
        xml = domain_xml(name, disk=disk, serial_log=serial_log, seed_iso=seed_iso, ram_mib=ram_mib, nic=nic)
        dom = conn.defineXML(xml)
        started_at = time.monotonic()
        dom.create()
        yield BootedGuest(name, conn, dom, workdir, disk, SerialLog(serial_log), started_at)
    finally:
        if dom is not None:
            with contextlib.suppress(libvirt.libvirtError):
                if dom.isActive():
                    dom.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefine()
        if conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()
        shutil.rmtree(workdir, ignore_errors=True)
