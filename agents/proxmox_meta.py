"""How our VM id lives on a Proxmox VM: a DNS-safe ``name`` plus a metadata block in ``description``.

The ``name`` (``cf-<id>`` or ``cf-<hash>``) finds candidates in one listing; the description's
``confluencia:vm_id=`` line confirms the match, so a foreign VM with a similar name is never taken for ours.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from agents.base import DomainInfo, DomainState, VMSpec

NAME_PREFIX = "cf-"
TAG = "confluencia"
_LINE = re.compile(r"^confluencia:(?P<key>[a-z_]+)=(?P<value>.*)$")
_DNS_SAFE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,56}[a-z0-9])?$")
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


def describe(spec: VMSpec) -> str:
    lines = [
        "Managed by Confluencia; do not edit the confluencia: lines.",
        f"confluencia:vm_id={quote(spec.vm_id, safe='')}",
        f"confluencia:tenant_id={quote(spec.tenant_id, safe='')}",
        f"confluencia:name={quote(spec.name, safe='')}",
        f"confluencia:spec=vcpus={spec.vcpus},ram_mib={spec.ram_mib},disk_gib={spec.disk_gib}",
    ]
    return "\n".join(lines)


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
        unquote(values["vm_id"]), unquote(values["tenant_id"]), unquote(values.get("name", "")), vcpus, ram, disk
    )


def same_spec(meta: Meta, spec: VMSpec) -> bool:
    return (meta.tenant_id, meta.vcpus, meta.ram_mib, meta.disk_gib) == (
        spec.tenant_id,
        spec.vcpus,
        spec.ram_mib,
        spec.disk_gib,
    )


def is_candidate(entry: dict[str, Any]) -> bool:
    """A listing entry that may be one of ours (cheap filter before reading its config)."""
    return str(entry.get("name", "")).startswith(NAME_PREFIX) and not entry.get("template")


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
    )
