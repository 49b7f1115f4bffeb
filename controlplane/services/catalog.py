"""Flavors (VM sizes) and the audit trail as tenants and operators read them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from controlplane import audit
from controlplane.context import Principal
from controlplane.db import db
from controlplane.errors import ValidationFailed
from controlplane.models import AuditEntry, Flavor
from controlplane.services.tenants import require_operator
from controlplane.services.tx import paginate, transaction


def list_flavors(limit: int, offset: int) -> tuple[list[Flavor], int]:
    return paginate(select(Flavor).where(Flavor.is_public.is_(True))
                    .order_by(Flavor.vcpus, Flavor.ram_mib, Flavor.name), limit, offset)


def create_flavor(actor: Principal, data: dict[str, Any]) -> Flavor:
    require_operator(actor)
    with transaction():
        if db.session.execute(select(Flavor.id).where(Flavor.name == data["name"])).first():
            raise ValidationFailed(f"flavor {data['name']!r} exists", errors={"name": ["Already taken."]})
        flavor = Flavor(**data)
        db.session.add(flavor)
        db.session.flush()
        audit.record(actor, "flavor.create", "flavor", flavor.id, after=dict(data))
    return flavor


def list_audit(actor: Principal, *, action: str | None, target_id: str | None, tenant_id: str | None,
               limit: int, offset: int) -> tuple[list[AuditEntry], int]:
    stmt = select(AuditEntry).order_by(AuditEntry.seq.desc())
    if not actor.is_operator:
        stmt = stmt.where(AuditEntry.tenant_id == actor.tenant_id)
    elif tenant_id:
        stmt = stmt.where(AuditEntry.tenant_id == tenant_id)
    if action:
        stmt = stmt.where(AuditEntry.action.startswith(action, autoescape=True))
    if target_id:
        stmt = stmt.where(AuditEntry.target_id == target_id)
    return paginate(stmt, limit, offset)
