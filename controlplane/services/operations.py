"""Operation records: the durable side of every asynchronous job (and the outbox for Celery)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from controlplane.context import Principal, request_id
from controlplane.db import db
from controlplane.errors import not_found
from controlplane.models import VM, Operation, OpStatus
from controlplane.models.base import utcnow
from controlplane.services.tx import after_commit, paginate


def new_operation(kind: str, vm: VM, actor: Principal) -> Operation:
    op = Operation(kind=kind, tenant_id=vm.tenant_id, target_type="vm", target_id=vm.id,
                   status=OpStatus.PENDING.value, created_by=actor.user_id, request_id=request_id.get())
    db.session.add(op)
    db.session.flush()
    return op


def enqueue(op: Operation) -> None:
    """Send the operation's task once the transaction that created it has committed."""
    op_id, kind = op.id, op.kind

    def _send() -> None:
        from controlplane.tasks.dispatch import dispatch

        dispatch(kind, op_id)

    after_commit(_send)


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


def stale_operations(older_than_s: float) -> list[Operation]:
    """Pending operations whose task was never delivered (e.g. the broker was down at commit time)."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    return list(db.session.execute(select(Operation).where(
        Operation.status == OpStatus.PENDING.value, Operation.updated_at < cutoff)).scalars())


def op_view(op: Operation) -> dict[str, Any]:
    return {"id": op.id, "kind": op.kind, "status": op.status, "progress": op.progress, "error": op.error}
