"""Operations as municipalities and operators read them, and the sweep that re-sends lost ones."""

from __future__ import annotations

from sqlalchemy import select

from controlplane.config import settings
from controlplane.context import Principal
from controlplane.core.outbox import due_for_resend, send_operation
from controlplane.core.tx import paginate, transaction
from controlplane.db import db
from controlplane.errors import not_found
from controlplane.models import Operation
from controlplane.models.base import utcnow
from controlplane.queue import task_for


def get_operation(actor: Principal, op_id: str) -> Operation:
    op = db.session.get(Operation, op_id)
    if op is None or not actor.can_see_tenant(op.tenant_id):
        raise not_found("operation", op_id)
    return op


def list_operations(actor: Principal, *, status: str | None = None, target_id: str | None = None,
                    kind: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[Operation], int]:
    stmt = select(Operation).order_by(Operation.created_at.desc(), Operation.id)
    if not actor.is_operator:
        stmt = stmt.where(Operation.tenant_id == actor.tenant_id)
    if status:
        stmt = stmt.where(Operation.status == status)
    if target_id:
        stmt = stmt.where(Operation.target_id == target_id)
    if kind:
        stmt = stmt.where(Operation.kind == kind)
    return paginate(stmt, limit, offset)


def requeue_stale() -> int:
    """Re-send the tasks of operations that no live worker holds (the operations table is the outbox):
    a dead worker's running operations, and pending ones whose message was lost. Runs every half lease."""
    with transaction():
        ops = due_for_resend(settings().lease_s)
        now = utcnow()
        for op in ops:
            op.sent_at = now
        sends = [(op.kind, op.id) for op in ops]
    for kind, op_id in sends:
        send_operation(task_for(kind), op_id)
    return len(sends)
