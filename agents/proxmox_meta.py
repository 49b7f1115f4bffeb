"""How our VM id lives on a Proxmox VM: a DNS-safe ``name`` plus a metadata block in ``description``.

The ``name`` (``cf-<id>`` or ``cf-<hash>``) finds candidates in one listing; the description's
``confluencia:vm_id=`` line confirms the match, so a foreign VM with a similar name is never taken for ours.

The ``confluencia:volumes=`` line maps our volume ids to where they are in that VM's config: a drive key
(``scsi0`` for the root disk, ``scsiN`` for data volumes) or, for a volume just detached and not yet handed
to the node's holder VM, its PVE volid (``local-lvm:vm-101-disk-1``, then an ``unusedN`` of the config).
Drive keys survive a migration (PVE may rename volids on the target); an entry whose key is not in the
config is an intent written before a move and is ignored until the move happens.

The ``confluencia:nics=`` line (``MAC@physnet@segment`` per NIC, in order) records the NICs the VM was made
with, so that a create of the same id with other NICs is told apart (``AlreadyExists``), also during the
moment a clone still has its template's NICs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from agents.base import DomainInfo, DomainState, NicSpec, VMSpec

NAME_PREFIX = "cf-"
TAG = "confluencia"
_LINE = re.compile(r"^confluencia:(?P<key>[a-z_]+)=(?P<value>.*)$")
_DNS_SAFE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,56}[a-z0-9])?$")
DRIVE = re.compile(r"^(scsi|virtio|sata|ide)(\d+)$")
HOLDER_NAME = "cf--volumes"  # never a pve_name(): those go on with [a-z0-9] after "cf-"
_STATES = {"running": DomainState.RUNNING, "stopped": DomainState.STOPPED}
MIB, GIB = 1024 * 1024, 1024 * 1024 * 1024


def pve_name(vm_id: str) -> str:
    """The Proxmox VM name for our id: readable when the id is DNS-safe (UUIDs are), hashed otherwise."""
    low = vm_id.lower()
    if _DNS_SAFE.match(low) and low == vm_id:
        return NAME_PREFIX + low
    return NAME_PREFIX + "h" + hashlib.sha256(vm_id.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Meta:
    vm_id: str
    tenant_id: str
    name: str
    vcpus: int
    ram_mib: int
    disk_gib: int
    nics: tuple[tuple[str, str, int], ...] = ()  # (MAC lower case, physnet, segment) per NIC


def nic_identity(nics: tuple[NicSpec, ...]) -> tuple[tuple[str, str, int], ...]:
    return tuple((n.mac.lower(), n.physnet, n.segment) for n in nics)


def describe(spec: VMSpec) -> str:
    lines = [
        "Managed by Confluencia; do not edit the confluencia: lines.",
        f"confluencia:vm_id={quote(spec.vm_id, safe='')}",
        f"confluencia:tenant_id={quote(spec.tenant_id, safe='')}",
        f"confluencia:name={quote(spec.name, safe='')}",
        _spec_line(spec.vcpus, spec.ram_mib, spec.disk_gib),
    ]
    if spec.nics:
        nics = ",".join("@".join(quote(str(v), safe="") for v in nic) for nic in nic_identity(spec.nics))
        lines.append(f"confluencia:nics={nics}")
    text = "\n".join(lines)
    return with_volumes(text, {spec.disks[0].volume_id: "scsi0"}) if spec.disks else text


def _spec_line(vcpus: int, ram_mib: int, disk: int) -> str:
    return f"confluencia:spec=vcpus={vcpus},ram_mib={ram_mib},disk_gib={disk}"


def _replace(text: str | None, key: str, line: str | None) -> str:
    """``text`` with its ``confluencia:KEY=`` line replaced by ``line`` (appended when missing, dropped: None)."""
    out, done = [], False
    for old in (text or "").splitlines():
        match = _LINE.match(old.strip())
        if match and match["key"] == key:
            if line is not None and not done:
                out.append(line)
            done = True
        else:
            out.append(old)
    if not done and line is not None:
        out.append(line)
    return "\n".join(out)


def with_spec(text: str | None, vcpus: int, ram_mib: int, disk: int) -> str:
    return _replace(text, "spec", _spec_line(vcpus, ram_mib, disk))


def read_volumes(text: str | None) -> dict[str, str]:
    """Our volume id -> drive key (or volid) from the ``confluencia:volumes=`` line."""
    for line in (text or "").splitlines():
        match = _LINE.match(line.strip())
        if match and match["key"] == "volumes":
            pairs = (item.split("@", 1) for item in match["value"].split(",") if "@" in item)
            return {unquote(vol): unquote(where) for vol, where in pairs}
    return {}


def with_volumes(text: str | None, mapping: dict[str, str]) -> str:
    value = ",".join(f"{quote(vol, safe='')}@{quote(where, safe='')}" for vol, where in mapping.items())
    return _replace(text, "volumes", f"confluencia:volumes={value}")


def drive_order(key: str) -> tuple[int, int]:
    match = DRIVE.match(key)
    buses = ("scsi", "virtio", "sata", "ide")
    return (buses.index(match[1]), int(match[2])) if match else (len(buses), 0)


def volumes_of(config: dict[str, Any]) -> tuple[str, ...]:
    """Our volume ids of the disks in the config, root (``scsi0``) first, then by drive."""
    mapping = read_volumes(config.get("description"))
    attached = [(drive_order(k), vol) for vol, k in mapping.items() if DRIVE.match(k) and k in config]
    return tuple(vol for _, vol in sorted(attached))


def parse_description(text: str | None) -> Meta | None:
    values: dict[str, str] = {}
    for line in (text or "").splitlines():
        match = _LINE.match(line.strip())
        if match:
            values[match["key"]] = match["value"]
    if "vm_id" not in values or "tenant_id" not in values:
        return None
    spec = dict(p.split("=", 1) for p in values.get("spec", "").split(",") if "=" in p)
    try:
        vcpus, ram, disk = int(spec.get("vcpus", 0)), int(spec.get("ram_mib", 0)), int(spec.get("disk_gib", 0))
    except ValueError:
        vcpus = ram = disk = 0
    return Meta(
        unquote(values["vm_id"]), unquote(values["tenant_id"]), unquote(values.get("name", "")), vcpus, ram, disk,
        _nics(values.get("nics", "")),
    )


def _nics(text: str) -> tuple[tuple[str, str, int], ...]:
    out = []
    for item in filter(None, text.split(",")):
        parts = [unquote(p) for p in item.split("@")]
        if len(parts) == 3 and parts[2].isdigit():
            out.append((parts[0].lower(), parts[1], int(parts[2])))
    return tuple(out)


def same_spec(meta: Meta, spec: VMSpec) -> bool:
    return (meta.tenant_id, meta.vcpus, meta.ram_mib, meta.disk_gib, meta.nics) == (
        spec.tenant_id,
        spec.vcpus,
        spec.ram_mib,
        spec.disk_gib,
        nic_identity(spec.nics),
    )


def is_candidate(entry: dict[str, Any]) -> bool:
    """A listing entry that may be one of ours (cheap filter before reading its config)."""
    return str(entry.get("name", "")).startswith(NAME_PREFIX) and not entry.get("template")


def size_bytes(drive: str) -> int:
    """The ``size=`` of a drive string in bytes (``size=1536M`` -> 1610612736); 0 when missing."""
    match = re.search(r"(?:^|,)size=(\d+(?:\.\d+)?)([KMGT]?)(?:,|$)", drive)
    if match is None:
        return 0
    return int(float(match[1]) * {"": 1, "K": 1024, "M": MIB, "G": GIB, "T": 1024 * GIB}[match[2]])


def drive_volid(drive: str) -> str:
    """The volume of a drive string (``local-lvm:vm-101-disk-1,size=1G`` -> ``local-lvm:vm-101-disk-1``)."""
    first = drive.split(",", 1)[0]
    return first.removeprefix("file=").removeprefix("volume=")


def disk_gib(config: dict[str, Any]) -> int:
    for key in ("scsi0", "virtio0", "sata0", "ide0"):
        match = re.search(r"size=(\d+)([KMGT]?)", str(config.get(key, "")))
        if match:
            size, unit = int(match[1]), match[2]
            return {"K": 0, "M": size // 1024, "G": size, "T": size * 1024}.get(unit, size // GIB)
    return 0


def domain_info(entry: dict[str, Any], config: dict[str, Any] | None) -> DomainInfo:
    """A DomainInfo from a ``/nodes/{node}/qemu`` or ``/cluster/resources`` entry (+ config when ours)."""
    meta = parse_description(config.get("description")) if config else None
    state = _STATES.get(str(entry.get("status")), DomainState.UNKNOWN)
    if entry.get("qmpstatus") == "paused":
        state = DomainState.PAUSED
    vcpus = int(entry.get("cpus") or entry.get("maxcpu") or 0)
    if config:
        vcpus = int(config.get("cores", 1)) * int(config.get("sockets", 1))
    return DomainInfo(
        vm_id=meta.vm_id if meta else str(entry.get("name") or f"vmid-{entry['vmid']}"),
        state=state,
        vcpus=vcpus,
        ram_mib=int(entry.get("maxmem") or 0) // MIB,
        disk_gib=disk_gib(config) if config else int(entry.get("maxdisk") or 0) // GIB,
        tenant_id=meta.tenant_id if meta else None,
        native_id=str(entry["vmid"]),
        volumes=volumes_of(config) if config and meta else (),
    )
