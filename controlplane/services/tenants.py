"""Municipalities (tenants) and their quotas: operator side; tenants read their own quota and usage."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from controlplane.context import Principal
from controlplane.core.audit import audited, created
from controlplane.core.authz import require_operator
from controlplane.core.quotas import quota_report
from controlplane.core.tx import check_version, paginate, transaction
from controlplane.db import db
from controlplane.errors import ValidationFailed, not_found
from controlplane.models import Tenant

__all__ = ["create_tenant", "get_tenant", "list_tenants", "quota_report", "update_tenant"]


def create_tenant(actor: Principal, data: dict[str, Any]) -> Tenant:
    require_operator(actor)
    with transaction():
        if db.session.execute(select(Tenant.id).where(Tenant.slug == data["slug"])).first():
            raise ValidationFailed(f"slug {data['slug']!r} is taken", errors={"slug": ["Already taken."]})
        tenant = Tenant(**data)
        db.session.add(tenant)
        created(actor, "tenant.create", tenant)
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
        with audited(actor, "tenant.update", tenant):
            for key, value in changes.items():
                setattr(tenant, key, value)
    return tenant


def list_tenants(actor: Principal, limit: int, offset: int) -> tuple[list[Tenant], int]:
    require_operator(actor)
    return paginate(select(Tenant).order_by(Tenant.slug), limit, offset)
