"""Domain XML from a :class:`VMSpec`, and our metadata read back from a domain."""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from agents.base import VMSpec
from agents.errors import DriverError

METADATA_NS = "https://confluencia.dev/xmlns/libvirt-domain/1"
METADATA_PREFIX = "confluencia"
# libvirt domain names: we use our VM id; keep to a safe alphabet.
VM_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")


@dataclass(frozen=True)
class OurMetadata:
    vm_id: str
    tenant_id: str
    name: str
    vcpus: int
    ram_mib: int
    disk_gib: int
    image: str | None = None


def domain_uuid(vm_id: str) -> str:
    """Deterministic libvirt UUID for our VM id: two concurrent creates define the very same domain."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"confluencia:vm:{vm_id}"))


def check_vm_id(vm_id: str) -> None:
    if not VM_ID_RE.match(vm_id):
        raise DriverError(f"VM id {vm_id!r} cannot name a libvirt domain", code="INVALID_ARG")


def metadata_xml(spec: VMSpec) -> str:
    root = ET.Element("vm")
    for tag, value in (
        ("vm-id", spec.vm_id),
        ("tenant-id", spec.tenant_id),
        ("name", spec.name),
        ("vcpus", str(spec.vcpus)),
        ("ram-mib", str(spec.ram_mib)),
        ("disk-gib", str(spec.disk_gib)),
    ):
        ET.SubElement(root, tag).text = value
    if spec.image:
        ET.SubElement(root, "image").text = spec.image
    return ET.tostring(root, encoding="unicode")


def domain_xml(spec: VMSpec, domain_type: str = "kvm", arch: str = "x86_64") -> str:
    """A minimal diskless domain: the disk size is recorded in our metadata only."""
    check_vm_id(spec.vm_id)
    if spec.vcpus < 1 or spec.ram_mib < 1 or spec.disk_gib < 0:
        raise DriverError(f"invalid VM size in {spec!r}", code="INVALID_ARG")
    dom = ET.Element("domain", type=domain_type)
    ET.SubElement(dom, "name").text = spec.vm_id
    ET.SubElement(dom, "uuid").text = domain_uuid(spec.vm_id)
    ET.SubElement(dom, "title").text = spec.name[:200]
    meta = ET.SubElement(dom, "metadata")
    ours = ET.fromstring(metadata_xml(spec))
    ours.tag = f"{{{METADATA_NS}}}vm"
    for child in ours:
        child.tag = f"{{{METADATA_NS}}}{child.tag}"
    meta.append(ours)
    ET.SubElement(dom, "memory", unit="MiB").text = str(spec.ram_mib)
    ET.SubElement(dom, "vcpu").text = str(spec.vcpus)
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch=arch).text = "hvm"
    ET.SubElement(os_el, "boot", dev="network")
    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "restart"
    ET.SubElement(dom, "on_crash").text = "destroy"
    devices = ET.SubElement(dom, "devices")
    ET.SubElement(devices, "memballoon", model="none")
    ET.register_namespace(METADATA_PREFIX, METADATA_NS)
    return ET.tostring(dom, encoding="unicode")


def parse_metadata(text: str) -> OurMetadata | None:
    """Our metadata element as returned by ``dom.metadata(ELEMENT, METADATA_NS)``; None if not ours."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return None

    def field(tag: str) -> str | None:
        el = root.find(tag)
        if el is None:
            el = root.find(f"{{{METADATA_NS}}}{tag}")
        return el.text if el is not None and el.text is not None else None

    vm_id, tenant = field("vm-id"), field("tenant-id")
    if not vm_id or not tenant:
        return None
    try:
        return OurMetadata(
            vm_id=vm_id,
            tenant_id=tenant,
            name=field("name") or vm_id,
            vcpus=int(field("vcpus") or 0),
            ram_mib=int(field("ram-mib") or 0),
            disk_gib=int(field("disk-gib") or 0),
            image=field("image"),
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
