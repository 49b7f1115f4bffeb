"""The operations table is the outbox: a use case records an operation in its transaction, and the
operation's task is sent by name once that transaction has committed. If the broker is down at that
moment, the operation stays ``pending`` and the periodic sweep (``confluencia.ops.requeue_stale``) sends
it again; plans are re-driven by ``confluencia.plans.resume``."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from controlplane import queue
from controlplane.context import Principal, request_id
from controlplane.core.tx import after_commit
from controlplane.db import db
from controlplane.models import VM, Operation, OpKind, OpStatus
from controlplane.models.base import utcnow


def new_operation(kind: OpKind, actor: Principal, *, target_type: str, target_id: str,
                  tenant_id: str | None) -> Operation:
    op = Operation(kind=kind.value, tenant_id=tenant_id, target_type=target_type, target_id=target_id,
                   status=OpStatus.PENDING.value, created_by=actor.user_id, request_id=request_id.get())
    db.session.add(op)
    db.session.flush()
    return op


def vm_operation(kind: OpKind, vm: VM, actor: Principal) -> Operation:
    return new_operation(kind, actor, target_type="vm", target_id=vm.id, tenant_id=vm.tenant_id)


def enqueue(op: Operation) -> None:
    """Send the operation's task (``confluencia.<kind>``) once the current transaction has committed."""
    name, op_id = queue.task_for(op.kind), op.id
    after_commit(lambda: send_operation(name, op_id))


def send_operation(name: str, op_id: str) -> None:
    queue.send(name, [op_id])


def kick_plan(plan_id: str, countdown: float = 0.0) -> None:
    """Schedule the next execution step of a plan (after commit when in a transaction)."""
    after_commit(lambda: queue.send(queue.PLAN_ADVANCE, [plan_id], countdown))


def stale_operations(older_than_s: float) -> list[Operation]:
    """Pending operations whose task was never delivered (e.g. the broker was down at commit time)."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    return list(db.session.execute(select(Operation).where(
        Operation.status == OpStatus.PENDING.value, Operation.kind != OpKind.PLAN_EXECUTE.value,
        Operation.updated_at < cutoff)).scalars())
