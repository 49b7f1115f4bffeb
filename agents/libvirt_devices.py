"""Device elements of a domain with disks (disk, CD-ROM, serial log, VNC, NIC) and reading them back.

Pure XML: no libvirt calls. :func:`agents.libvirt_xml.domain_xml` puts these into a domain; the driver reads
disks, the VNC port and the serial log of a live or persistent definition with :func:`disks_of`,
:func:`vnc_port` and :func:`serial_log_of`.
"""

from __future__ import annotations

import re
import string
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from agents.errors import DriverError

UNSAFE_SERIAL = re.compile(r"[^A-Za-z0-9_.+-]")  # libvirt refuses other characters in a disk serial
ROOT_TARGET = "vda"
SEED_TARGET = "hdc"  # the NoCloud CD-ROM on the IDE bus (the guest sees /dev/sr0)


@dataclass(frozen=True)
class Layout:
    """Where the devices of a domain with disks are (files on the host) and how its console and NIC look."""

    root: str  # path of the root disk (qcow2)
    data: tuple[tuple[str, str], ...] = ()  # (path, volume id) of each data volume, in order (qcow2)
    seed: str | None = None  # the cidata ISO
    serial_log: str | None = None
    vnc_listen: str = "127.0.0.1"
    nic: str = "none"  # "user": QEMU user-mode networking; "none" (used when ``bridged`` is empty)
    mac: str | None = None
    bridged: tuple[tuple[str, str], ...] = ()  # (bridge, MAC) of each NIC on a segment, in guest order


@dataclass(frozen=True)
class DiskDevice:
    """A ``<disk type='file'>`` of a definition."""

    target: str  # vda, vdb, hdc
    path: str
    device: str  # disk | cdrom
    serial: str | None = None


def disk_element(path: str, target: str, *, serial: str | None = None, fmt: str = "qcow2") -> ET.Element:
    disk = ET.Element("disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type=fmt)
    ET.SubElement(disk, "source", file=path)
    ET.SubElement(disk, "target", dev=target, bus="virtio")
    if serial:
        ET.SubElement(disk, "serial").text = UNSAFE_SERIAL.sub("-", serial)  # the guest sees its first 20 bytes
    return disk


def disk_xml(path: str, target: str, *, serial: str | None = None) -> str:
    """A data volume's ``<disk>`` for ``attachDeviceFlags``."""
    return ET.tostring(disk_element(path, target, serial=serial), encoding="unicode")


def cdrom_element(path: str) -> ET.Element:
    cdrom = ET.Element("disk", type="file", device="cdrom")
    ET.SubElement(cdrom, "driver", name="qemu", type="raw")
    ET.SubElement(cdrom, "source", file=path)
    ET.SubElement(cdrom, "target", dev=SEED_TARGET, bus="ide")
    ET.SubElement(cdrom, "readonly")
    return cdrom


def nic_elements(mode: str, mac: str | None) -> list[ET.Element]:
    """The guest's NICs. ``user``: libvirt user-mode networking (no host setup; session daemons)."""
    if mode == "none":
        return []
    if mode != "user":
        raise DriverError(f"NIC mode {mode!r} is not supported", code="INVALID_ARG")
    iface = ET.Element("interface", type="user")
    if mac:
        ET.SubElement(iface, "mac", address=mac.lower())
    ET.SubElement(iface, "model", type="virtio")
    return [iface]


def bridge_elements(bridged: tuple[tuple[str, str], ...]) -> list[ET.Element]:
    """One ``<interface type='bridge'>`` (virtio) per ``(bridge, MAC)``, in order: the first is the guest's eth0."""
    out = []
    for bridge, mac in bridged:
        iface = ET.Element("interface", type="bridge")
        ET.SubElement(iface, "source", bridge=bridge)
        ET.SubElement(iface, "mac", address=mac.lower())
        ET.SubElement(iface, "model", type="virtio")
        out.append(iface)
    return out


def device_elements(layout: Layout) -> list[ET.Element]:
    """Root disk (vda), data volumes (vdb, ...), seed CD-ROM, NIC, serial log, VNC, in that order."""
    out = [disk_element(layout.root, ROOT_TARGET)]
    for i, (path, volume_id) in enumerate(layout.data):
        out.append(disk_element(path, f"vd{string.ascii_lowercase[i + 1]}", serial=volume_id))
    if layout.seed:
        out.append(cdrom_element(layout.seed))
    out += bridge_elements(layout.bridged) if layout.bridged else nic_elements(layout.nic, layout.mac)
    if layout.serial_log:
        serial = ET.Element("serial", type="file")
        ET.SubElement(serial, "source", path=layout.serial_log, append="on")  # a migration target appends
        ET.SubElement(serial, "target", port="0")
        out.append(serial)
    out.append(ET.Element("graphics", type="vnc", port="-1", autoport="yes", listen=layout.vnc_listen))
    return out


def _parse(xml: str) -> ET.Element:
    try:
        return ET.fromstring(xml)
    except ET.ParseError as exc:
        raise DriverError(f"unreadable domain XML: {exc}") from exc


def disks_of(xml: str) -> list[DiskDevice]:
    """The file-backed disks and CD-ROMs of a domain definition, in order."""
    out = []
    for disk in _parse(xml).findall("devices/disk[@type='file']"):
        source, target = disk.find("source"), disk.find("target")
        if source is None or target is None or not source.get("file"):
            continue
        out.append(DiskDevice(target.get("dev", ""), source.get("file", ""), disk.get("device", "disk"),
                              disk.findtext("serial")))  # fmt: skip
    return out


def next_target(used: set[str]) -> str:
    """The first free virtio disk name after vda: vdb, vdc, ..., vdz, vdaa, ..."""
    letters = string.ascii_lowercase
    names = [f"vd{c}" for c in letters[1:]] + [f"vd{a}{b}" for a in letters for b in letters]
    for name in names:
        if name not in used:
            return name
    raise DriverError("no free disk name left", code="INVALID_ARG")


def vnc_port(xml: str) -> int | None:
    graphics = _parse(xml).find("devices/graphics[@type='vnc']")
    if graphics is None:
        return None
    try:
        port = int(graphics.get("port", "-1"))
    except ValueError:
        return None
    return port if port > 0 else None


def serial_log_of(xml: str) -> str | None:
    source = _parse(xml).find("devices/serial[@type='file']/source")
    return source.get("path") if source is not None else None


def with_paths(xml: str, moves: dict[str, str]) -> str:
    """``xml`` with the disk and serial log files in ``moves`` (old path -> new path) replaced."""
    root = _parse(xml)
    for source in root.findall("devices/disk/source"):
        if source.get("file") in moves:
            source.set("file", moves[source.get("file", "")])
    for source in [*root.findall("devices/serial/source"), *root.findall("devices/console/source")]:
        if source.get("path") in moves:
            source.set("path", moves[source.get("path", "")])
    return ET.tostring(root, encoding="unicode")


def backing_of(volume_xml: str) -> tuple[str, str] | None:
    """``(path, format)`` of a volume's backing file, None without one."""
    backing = _parse(volume_xml).find("backingStore")
    if backing is None or not backing.findtext("path"):
        return None
    fmt = backing.find("format")
    return backing.findtext("path", ""), (fmt.get("type", "qcow2") if fmt is not None else "qcow2")
