"""Municipalities (tenants) and their quotas: operator side; tenants read their own quota and usage."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from controlplane import audit
from controlplane.context import Principal
from controlplane.db import db
from controlplane.errors import Forbidden, Msg, ValidationFailed, not_found
from controlplane.models import Tenant
from controlplane.services import capacity
from controlplane.services.tx import check_version, paginate, transaction

QUOTA_FIELDS = ("quota_vcpus", "quota_ram_mib", "quota_disk_gib", "quota_vms")


def require_operator(actor: Principal) -> None:
    if not actor.is_operator:
        raise Forbidden(Msg("This needs the data-center operator role.",
                            "Esto requiere el rol de operador del centro de datos."))


def tenant_view(t: Tenant) -> dict[str, Any]:
    return {"slug": t.slug, "name": t.name, **{f: getattr(t, f) for f in QUOTA_FIELDS}}


def create_tenant(actor: Principal, data: dict[str, Any]) -> Tenant:
    require_operator(actor)
    with transaction():
        if db.session.execute(select(Tenant.id).where(Tenant.slug == data["slug"])).first():
            raise ValidationFailed(f"slug {data['slug']!r} is taken", errors={"slug": ["Already taken."]})
        tenant = Tenant(**data)
        db.session.add(tenant)
        db.session.flush()
        audit.record(actor, "tenant.create", "tenant", tenant.id, tenant_id=tenant.id, after=tenant_view(tenant))
    return tenant


def get_tenant(actor: Principal, tenant_id: str) -> Tenant:
    tenant = db.session.get(Tenant, tenant_id)
    if tenant is None or not actor.can_see_tenant(tenant.id):
        raise not_found("tenant", tenant_id)
    return tenant


def update_tenant(actor: Principal, tenant_id: str, changes: dict[str, Any], if_match: int | None) -> Tenant:
    """Quotas may go below current usage: existing VMs stay, new ones are refused (like OpenStack)."""
    require_operator(actor)
    with transaction():
        tenant = get_tenant(actor, tenant_id)
        check_version(tenant.version, if_match)
        before = tenant_view(tenant)
        for key, value in changes.items():
            setattr(tenant, key, value)
        audit.record(actor, "tenant.update", "tenant", tenant.id, tenant_id=tenant.id, before=before,
                     after=tenant_view(tenant))
    return tenant


def list_tenants(actor: Principal, limit: int, offset: int) -> tuple[list[Tenant], int]:
    require_operator(actor)
    return paginate(select(Tenant).order_by(Tenant.slug), limit, offset)


def quota_report(tenant: Tenant) -> dict[str, dict[str, int]]:
    used = capacity.tenant_usage(tenant.id).as_dict()
    limit = capacity.quota_of(tenant).as_dict()
    return {res: {"limit": limit[res], "used": used[res], "available": max(limit[res] - used[res], 0)}
            for res in limit}
