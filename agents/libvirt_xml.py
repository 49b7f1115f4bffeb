"""Domain XML from a :class:`VMSpec`, and our metadata read back from a domain.

A spec without disks makes a minimal diskless domain (its disk size only recorded); one with disks gets its
devices from :mod:`agents.libvirt_devices` and records its volumes (our ids, pool, file name) in our
metadata, root first.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace

from agents.base import NicSpec, VMSpec
from agents.errors import DriverError
from agents.libvirt_devices import Layout, bridge_elements, device_elements

METADATA_NS = "https://confluencia.dev/xmlns/libvirt-domain/1"
METADATA_PREFIX = "confluencia"
# libvirt domain names: we use our VM id; keep to a safe alphabet.
VM_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")


@dataclass(frozen=True)
class VolumeRef:
    """One disk of a domain in our metadata: our volume id, our pool name, the volume's name in the pool."""

    volume_id: str
    pool: str
    name: str


@dataclass(frozen=True)
class NicRef:
    """One NIC of a domain in our metadata: our port id, its MAC (lower case) and its segment on a physnet (the
    bridge is this host's realisation of it: a migration target may name it differently)."""

    port_id: str
    mac: str
    physnet: str
    segment: int

    @classmethod
    def of(cls, nic: NicSpec) -> NicRef:
        return cls(nic.port_id, nic.mac.lower(), nic.physnet, nic.segment)


@dataclass(frozen=True)
class OurMetadata:
    vm_id: str
    tenant_id: str
    name: str
    vcpus: int
    ram_mib: int
    disk_gib: int
    image: str | None = None
    volumes: tuple[VolumeRef, ...] = ()  # root first, then data volumes
    nics: tuple[NicRef, ...] = ()  # in guest order (eth0 first)

    @classmethod
    def of(cls, spec: VMSpec, volumes: tuple[VolumeRef, ...] = ()) -> OurMetadata:
        return cls(spec.vm_id, spec.tenant_id, spec.name, spec.vcpus, spec.ram_mib, spec.disk_gib, spec.image,
                   volumes, tuple(NicRef.of(n) for n in spec.nics))  # fmt: skip

    @property
    def root(self) -> VolumeRef | None:
        return self.volumes[0] if self.volumes else None

    def with_volume(self, ref: VolumeRef) -> OurMetadata:
        """With ``ref`` (replacing the entry of the same volume id, else appended)."""
        if any(v.volume_id == ref.volume_id for v in self.volumes):
            return replace(self, volumes=tuple(ref if v.volume_id == ref.volume_id else v for v in self.volumes))
        return replace(self, volumes=(*self.volumes, ref))

    def without_volume(self, volume_id: str) -> OurMetadata:
        return replace(self, volumes=tuple(v for v in self.volumes if v.volume_id != volume_id))


def domain_uuid(vm_id: str) -> str:
    """Deterministic libvirt UUID for our VM id: two concurrent creates define the very same domain."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"confluencia:vm:{vm_id}"))


def check_vm_id(vm_id: str) -> None:
    if not VM_ID_RE.match(vm_id):
        raise DriverError(f"VM id {vm_id!r} cannot name a libvirt domain", code="INVALID_ARG")


def metadata_xml(meta: OurMetadata | VMSpec) -> str:
    """Our metadata element (for ``setMetadata``); a spec stands for its metadata without volumes."""
    if isinstance(meta, VMSpec):
        meta = OurMetadata.of(meta)
    root = ET.Element("vm")
    for tag, value in (
        ("vm-id", meta.vm_id),
        ("tenant-id", meta.tenant_id),
        ("name", meta.name),
        ("vcpus", str(meta.vcpus)),
        ("ram-mib", str(meta.ram_mib)),
        ("disk-gib", str(meta.disk_gib)),
    ):
        ET.SubElement(root, tag).text = value
    if meta.image:
        ET.SubElement(root, "image").text = meta.image
    if meta.volumes:
        vols = ET.SubElement(root, "volumes")
        for ref in meta.volumes:
            ET.SubElement(vols, "volume", pool=ref.pool, name=ref.name).text = ref.volume_id
    if meta.nics:
        nics = ET.SubElement(root, "nics")
        for nic in meta.nics:
            ET.SubElement(nics, "nic", mac=nic.mac, physnet=nic.physnet, segment=str(nic.segment)).text = nic.port_id
    return ET.tostring(root, encoding="unicode")


def domain_xml(
    spec: VMSpec,
    domain_type: str = "kvm",
    arch: str = "x86_64",
    layout: Layout | None = None,
    volumes: tuple[VolumeRef, ...] = (),
    bridged: tuple[tuple[str, str], ...] = (),
) -> str:
    """A minimal diskless domain (the disk size is recorded in our metadata only), or with ``layout`` (a
    spec with disks) one that boots from its root disk with its volumes, seed, console and NIC. ``bridged``:
    ``(bridge, MAC)`` of the spec's NICs on segments (they replace the layout's default NIC)."""
    check_vm_id(spec.vm_id)
    if spec.vcpus < 1 or spec.ram_mib < 1 or spec.disk_gib < 0:
        raise DriverError(f"invalid VM size in {spec!r}", code="INVALID_ARG")
    dom = ET.Element("domain", type=domain_type)
    ET.SubElement(dom, "name").text = spec.vm_id
    ET.SubElement(dom, "uuid").text = domain_uuid(spec.vm_id)
    ET.SubElement(dom, "title").text = spec.name[:200]
    meta = ET.SubElement(dom, "metadata")
    ours = ET.fromstring(metadata_xml(OurMetadata.of(spec, volumes)))
    for el in ours.iter():
        el.tag = f"{{{METADATA_NS}}}{el.tag}"
    meta.append(ours)
    ET.SubElement(dom, "memory", unit="MiB").text = str(spec.ram_mib)
    ET.SubElement(dom, "vcpu").text = str(spec.vcpus)
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch=arch).text = "hvm"
    ET.SubElement(os_el, "boot", dev="network" if layout is None else "hd")
    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")
    if layout is not None:
        ET.SubElement(features, "apic")
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "restart"
    ET.SubElement(dom, "on_crash").text = "destroy"
    devices = ET.SubElement(dom, "devices")
    if layout is not None:
        devices.extend(device_elements(replace(layout, bridged=bridged) if bridged else layout))
    else:
        devices.extend(bridge_elements(bridged))
    ET.SubElement(devices, "memballoon", model="none")
    ET.register_namespace(METADATA_PREFIX, METADATA_NS)
    return ET.tostring(dom, encoding="unicode")


def parse_metadata(text: str) -> OurMetadata | None:
    """Our metadata element as returned by ``dom.metadata(ELEMENT, METADATA_NS)``; None if not ours."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return None

    def find(parent: ET.Element, tag: str) -> ET.Element | None:
        el = parent.find(tag)
        return el if el is not None else parent.find(f"{{{METADATA_NS}}}{tag}")

    def field(tag: str) -> str | None:
        el = find(root, tag)
        return el.text if el is not None and el.text is not None else None

    vols = find(root, "volumes")
    volumes = tuple(
        VolumeRef(v.text, v.get("pool", ""), v.get("name", ""))
        for v in (vols.findall("*") if vols is not None else [])
        if v.text
    )

    vm_id, tenant = field("vm-id"), field("tenant-id")
    if not vm_id or not tenant:
        return None
    nics_el = find(root, "nics")
    try:
        nics = tuple(
            NicRef(n.text or "", n.get("mac", ""), n.get("physnet", ""), int(n.get("segment", "")))
            for n in (nics_el.findall("*") if nics_el is not None else [])
        )
        return OurMetadata(
            vm_id=vm_id,
            tenant_id=tenant,
            name=field("name") or vm_id,
            vcpus=int(field("vcpus") or 0),
            ram_mib=int(field("ram-mib") or 0),
            disk_gib=int(field("disk-gib") or 0),
            image=field("image"),
            volumes=volumes,
            nics=nics,
        )
    except ValueError:
        return None


def host_uuid(capabilities_xml: str) -> str | None:
    try:
        el = ET.fromstring(capabilities_xml).find("./host/uuid")
    except ET.ParseError:
        return None
    return el.text if el is not None else None


def supports_kvm(capabilities_xml: str, arch: str = "x86_64") -> bool:
    try:
        caps = ET.fromstring(capabilities_xml)
    except ET.ParseError:
        return False
    for guest in caps.findall("./guest"):
        arch_el = guest.find("arch")
        if arch_el is None or arch_el.get("name") != arch:
            continue
        if any(d.get("type") == "kvm" for d in arch_el.findall("domain")):
            return True
    return False
