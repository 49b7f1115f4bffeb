"""Quotas of a municipality: the check every claim makes, and the report a municipality reads."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, select

from controlplane.core import capacity
from controlplane.db import db
from controlplane.errors import Msg, QuotaExceeded, not_found
from controlplane.models import Image, ImageState, Network, Port, Tenant, TenantUsage

RESOURCE_LABELS = {"vcpus": ("vCPU", "vCPU", ""), "ram_mib": ("RAM", "RAM", " MiB"),
                   "disk_gib": ("disk", "disco", " GiB"), "vms": ("VM count", "cantidad de VMs", "")}


def lock_tenant(tenant_id: str) -> Tenant:
    """The tenant row, locked: claims of one municipality are serialised on it."""
    tenant = db.session.execute(select(Tenant).where(Tenant.id == tenant_id).with_for_update()).scalar_one_or_none()
    if tenant is None:
        raise not_found("tenant", tenant_id)
    return tenant


# both rows locked, so PostgreSQL re-reads the usage a concurrent claim just committed; built once
_WITH_USAGE = (select(Tenant, TenantUsage.vcpus, TenantUsage.ram_mib, TenantUsage.disk_gib, TenantUsage.vms)
               .join(TenantUsage, TenantUsage.tenant_id == Tenant.id).where(Tenant.id == bindparam("tenant_id"))
               .with_for_update(of=(Tenant, TenantUsage)))


def lock_tenant_with_usage(tenant_id: str) -> tuple[Tenant, capacity.Usage]:
    """The tenant row, locked, and what it uses (one query; the usage changes only under this lock)."""
    row = db.session.execute(_WITH_USAGE, {"tenant_id": tenant_id}).first()
    if row is None:
        raise not_found("tenant", tenant_id)
    return row[0], capacity.Usage(*(int(x or 0) for x in row[1:]))


def check_quota(tenant: Tenant, vcpus: int, ram_mib: int, disk_gib: int, count: int = 1, *,
                used: capacity.Usage | None = None) -> None:
    """Raise :class:`QuotaExceeded` naming each resource that does not fit and how much is left."""
    used = used if used is not None else capacity.tenant_usage(tenant.id)
    limit = capacity.quota_of(tenant)
    asked = {"vcpus": vcpus, "ram_mib": ram_mib, "disk_gib": disk_gib, "vms": count}
    over: dict[str, dict[str, int]] = {}
    for res, req in asked.items():
        lim, use = getattr(limit, res), getattr(used, res)
        if use + req > lim:
            over[res] = {"limit": lim, "used": use, "requested": req, "available": max(lim - use, 0)}
    if over:
        parts_en, parts_es = [], []
        for res, q in over.items():
            en, es, unit = RESOURCE_LABELS[res]
            parts_en.append(f"{en}: requested {q['requested']}{unit}, {q['available']}{unit} left of "
                            f"{q['limit']}{unit}")
            parts_es.append(f"{es}: pidió {q['requested']}{unit}, quedan {q['available']}{unit} de "
                            f"{q['limit']}{unit}")
        raise QuotaExceeded(Msg(f"Quota of {tenant.name} exceeded ({'; '.join(parts_en)}).",
                                f"Cuota de {tenant.name} excedida ({'; '.join(parts_es)})."), quota=over)


def private_images(tenant_id: str) -> int:
    return int(db.session.execute(select(func.count()).select_from(Image).where(
        Image.tenant_id == tenant_id, Image.state != ImageState.DELETED.value)).scalar_one())


def _count(model: Any, tenant_id: str) -> int:
    return int(db.session.execute(select(func.count()).select_from(model).where(
        model.tenant_id == tenant_id)).scalar_one())


def quota_report(tenant: Tenant) -> dict[str, dict[str, int]]:
    used = capacity.tenant_usage(tenant.id).as_dict() | {
        "images": private_images(tenant.id), "networks": _count(Network, tenant.id),
        "addresses": _count(Port, tenant.id)}
    limit = capacity.quota_of(tenant).as_dict() | {"images": tenant.quota_images, "networks": tenant.quota_networks,
                                                   "addresses": tenant.quota_addresses}
    return {res: {"limit": limit[res], "used": used[res], "available": max(limit[res] - used[res], 0)}
            for res in limit}
