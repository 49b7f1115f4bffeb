"""The audit trail as municipalities and operators read it, and the verification of its hash chain."""

from __future__ import annotations

from sqlalchemy import select

from controlplane.context import Principal
from controlplane.core.audit import ChainReport, verify_chain
from controlplane.core.tx import paginate
from controlplane.db import db
from controlplane.models import AuditEntry

__all__ = ["ChainReport", "list_audit", "verify"]


def list_audit(actor: Principal, *, action: str | None, target_id: str | None, tenant_id: str | None,
               limit: int, offset: int) -> tuple[list[AuditEntry], int]:
    """Newest first; a municipality sees only its own entries, an operator all (or one municipality's)."""
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


def verify() -> ChainReport:
    """Recompute the whole chain (the ``confluencia audit verify`` command)."""
    report = verify_chain()
    db.session.rollback()
    return report
