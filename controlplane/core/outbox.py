"""The operations table is the outbox: a use case records an operation in its transaction, and the
operation's task is sent by name once that transaction has committed. If the broker is down at that
moment, the operation stays ``pending`` and the periodic sweep (``confluencia.ops.requeue_stale``) sends
it again; plans are re-driven by ``confluencia.plans.resume``."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from controlplane import queue
from controlplane.context import Principal, request_id
from controlplane.core.tx import after_commit
from controlplane.db import db
from controlplane.models import VM, Operation, OpKind, OpStatus, Plan
from controlplane.models.base import new_id, utcnow


def new_operation(kind: OpKind, actor: Principal, *, target_type: str, target_id: str,
                  tenant_id: str | None) -> Operation:
    op = Operation(id=new_id(), kind=kind.value, tenant_id=tenant_id, target_type=target_type,
                   target_id=target_id, status=OpStatus.PENDING.value, created_by=actor.user_id,
                   request_id=request_id.get(), created_at=utcnow(), attempts=0, progress=0)
    db.session.add(op)  # written with the rest of the transaction (its id is ours already)
    return op


def vm_operation(kind: OpKind, vm: VM, actor: Principal) -> Operation:
    return new_operation(kind, actor, target_type="vm", target_id=vm.id, tenant_id=vm.tenant_id)


def enqueue(op: Operation) -> None:
    """Send the operation's task (``confluencia.<kind>``) once the current transaction has committed."""
    name, op_id = queue.task_for(op.kind), op.id
    after_commit(lambda: send_operation(name, op_id))


def send_operation(name: str, op_id: str) -> None:
    queue.send(name, [op_id])


def kick_plan(plan: Plan) -> None:
    """Start a new chain of execution steps for ``plan`` once the transaction commits. The plan gets a new
    step token, so the chain that was running (if any) ends at its next step: one chain drives a plan."""
    token = plan.step_token = new_id()
    plan.next_step_at = utcnow()
    plan_id = plan.id
    after_commit(lambda: queue.send(queue.PLAN_ADVANCE, [plan_id, token]))


def due_for_resend(lease_s: float) -> list[Operation]:
    """Operations whose task must be sent again, row-locked: running ones whose worker died (the lease
    expired without a heartbeat), and pending ones sent more than a lease ago that no worker took (the broker
    lost the message, or the worker that had reserved it died). Each is re-sent at most once per lease."""
    now = utcnow()
    cutoff = now - timedelta(seconds=lease_s)
    dead = (Operation.status == OpStatus.RUNNING.value) & (Operation.lease_expires_at < now)
    lost = (Operation.status == OpStatus.PENDING.value) & (
        func.coalesce(Operation.sent_at, Operation.created_at) < cutoff)
    return list(db.session.execute(select(Operation).where(
        Operation.kind != OpKind.PLAN_EXECUTE.value, dead | lost).with_for_update(skip_locked=True)).scalars())
