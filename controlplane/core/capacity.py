"""What is claimed where: per-host allocations and per-tenant usage, computed from the VMs themselves.

A VM claims its resources on ``host_id`` while ``host_id`` is set and it is not DELETED, and also on
``migration_target_id`` while it migrates. Nothing else stores usage, so nothing can drift.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Subquery, func, select, union_all

from controlplane.db import db
from controlplane.models import VM, Host, Tenant, VMState


@dataclass(frozen=True)
class Usage:
    vcpus: int = 0
    ram_mib: int = 0
    disk_gib: int = 0
    vms: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"vcpus": self.vcpus, "ram_mib": self.ram_mib, "disk_gib": self.disk_gib, "vms": self.vms}


def _claims() -> Subquery:
    live = VM.state != VMState.DELETED.value
    on_host = select(VM.host_id.label("host_id"), VM.vcpus, VM.ram_mib, VM.disk_gib).where(
        VM.host_id.is_not(None), live)
    on_target = select(VM.migration_target_id.label("host_id"), VM.vcpus, VM.ram_mib, VM.disk_gib).where(
        VM.migration_target_id.is_not(None), live)
    return union_all(on_host, on_target).subquery()


def host_allocations(host_ids: Iterable[str] | None = None) -> dict[str, Usage]:
    c = _claims()
    stmt = select(c.c.host_id, func.sum(c.c.vcpus), func.sum(c.c.ram_mib), func.sum(c.c.disk_gib),
                  func.count()).group_by(c.c.host_id)
    if host_ids is not None:
        stmt = stmt.where(c.c.host_id.in_(list(host_ids)))
    return {h: Usage(int(v or 0), int(r or 0), int(d or 0), int(n))
            for h, v, r, d, n in db.session.execute(stmt)}


def host_allocation(host_id: str) -> Usage:
    return host_allocations([host_id]).get(host_id, Usage())


def tenant_usage(tenant_id: str) -> Usage:
    row = db.session.execute(
        select(func.sum(VM.vcpus), func.sum(VM.ram_mib), func.sum(VM.disk_gib), func.count())
        .where(VM.tenant_id == tenant_id, VM.host_id.is_not(None), VM.state != VMState.DELETED.value)
    ).one()
    return Usage(int(row[0] or 0), int(row[1] or 0), int(row[2] or 0), int(row[3]))


def quota_of(tenant: Tenant) -> Usage:
    return Usage(tenant.quota_vcpus, tenant.quota_ram_mib, tenant.quota_disk_gib, tenant.quota_vms)


def fits(host: Host, used: Usage, vcpus: int, ram_mib: int, disk_gib: int) -> bool:
    cap = host.capacity()
    return (used.vcpus + vcpus <= cap[0] + 1e-9 and used.ram_mib + ram_mib <= cap[1] + 1e-9
            and used.disk_gib + disk_gib <= cap[2] + 1e-9)
