"""The one component that moves VMs: runs approved plans wave by wave.

``advance(plan_id)`` is one step, called by a Celery task that re-schedules itself while the plan runs
(no worker thread ever blocks waiting for migrations). A database lock (``executor_locks``) lets one plan
execute at a time, manual or nightly. Before each move starts it is checked again against the current
state (VM deleted or moved, target full or disabled, anti-affinity) and skipped with the reason if stale.
Cancelling stops after the migrations in flight; ``on_failure = stop`` does the same after a failed move.
A plan ends ``succeeded`` only when no move failed and, for a drain, the host holds no VM any more.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update

from controlplane import audit
from controlplane.context import SYSTEM, Principal
from controlplane.db import db
from controlplane.errors import ProblemError
from controlplane.models import (
    VM,
    ExecutorLock,
    Host,
    MoveStatus,
    Operation,
    OpStatus,
    Plan,
    PlanMove,
    PlanStatus,
    User,
    VMState,
)
from controlplane.models.base import utcnow
from controlplane.services import cluster, window
from controlplane.services.migrations import check_target
from controlplane.services.operations import enqueue, new_operation
from controlplane.services.tx import transaction
from controlplane.services.vms import vm_view
from controlplane.state_machine import transition

log = logging.getLogger("confluencia.executor")
LOCK = "plan-executor"
POLL_S = 0.5
LOCK_WAIT_S = 5.0
WINDOW_WAIT_S = 60.0
TERMINAL = (PlanStatus.SUCCEEDED.value, PlanStatus.FAILED.value, PlanStatus.CANCELLED.value,
            PlanStatus.DISCARDED.value)


def advance(plan_id: str) -> float | None:
    """Do what can be done now; seconds until the next step, or None when the plan is over."""
    with transaction():
        plan = db.session.execute(select(Plan).where(Plan.id == plan_id).with_for_update()).scalar_one()
        if plan.status in TERMINAL or plan.status == PlanStatus.DRAFT:
            return None
        if plan.status == PlanStatus.APPROVED:
            if plan.cancel_requested:
                _finish(plan, PlanStatus.CANCELLED, "cancelled before it started")
                return None
            if plan.origin == "nightly" and not window.is_open():
                return WINDOW_WAIT_S
            if not _acquire(plan.id):
                return LOCK_WAIT_S
            plan.status, plan.started_at = PlanStatus.RUNNING.value, utcnow()
            _op(plan, OpStatus.RUNNING)
        return _step(plan)


def _step(plan: Plan) -> float | None:
    moves = list(plan.moves)
    for m in moves:
        if m.status == MoveStatus.RUNNING:
            _sync_move(m)
    failed = [m for m in moves if m.status == MoveStatus.FAILED]
    if failed and plan.on_failure == "stop" and not plan.cancel_requested:
        plan.cancel_requested, plan.reason = True, "stopped after a failed move (policy: stop)"
    running = [m for m in moves if m.status == MoveStatus.RUNNING]
    pending = [m for m in moves if m.status == MoveStatus.PENDING]
    _progress(plan, moves)
    if running:
        return POLL_S
    if pending and plan.cancel_requested:
        for m in pending:
            m.status, m.reason, m.finished_at = MoveStatus.CANCELLED.value, plan.reason or "plan cancelled", utcnow()
        pending = []
    if pending:
        if plan.origin == "nightly" and not window.is_open():
            return WINDOW_WAIT_S  # no migration starts outside the maintenance window
        wave = min(m.wave for m in pending)
        plan.current_wave = wave
        approver = _approver(plan)
        started = sum(_start_move(plan, m, approver) for m in pending if m.wave == wave)
        return POLL_S if started else 0.0
    status, reason = _outcome(plan, moves, failed)
    _finish(plan, status, reason)
    return None


def _outcome(plan: Plan, moves: list[PlanMove], failed: list[PlanMove]) -> tuple[PlanStatus, str | None]:
    """How a plan whose moves are all settled ended. ``succeeded`` only when nothing failed and, for a
    drain, the host is really empty; under ``on_failure = continue`` a failed move still fails the plan
    (the policy decides whether the other moves run, not how the plan is reported)."""
    if failed and plan.on_failure == "stop":
        return PlanStatus.FAILED, plan.reason
    if plan.cancel_requested:
        return PlanStatus.CANCELLED, plan.reason
    problems = [f"{len(failed)} of {len(moves)} moves failed"] if failed else []
    if plan.kind == "drain" and plan.host_id is not None:
        left = db.session.execute(select(VM.id).where(VM.host_id == plan.host_id, VM.state != VMState.DELETED.value)
                                 .order_by(VM.id)).scalars().all()
        if left:
            problems.append(f"the host still holds {len(left)} VM(s): {', '.join(left)}")
    if problems:
        return PlanStatus.FAILED, "; ".join(problems)
    return PlanStatus.SUCCEEDED, plan.reason


def _sync_move(m: PlanMove) -> None:
    op = db.session.get(Operation, m.operation_id) if m.operation_id else None
    if op is None or op.status in (OpStatus.PENDING, OpStatus.RUNNING):
        return
    m.status = (MoveStatus.SUCCEEDED if op.status == OpStatus.SUCCEEDED else MoveStatus.FAILED).value
    m.reason, m.finished_at = op.error, utcnow()


def _start_move(plan: Plan, m: PlanMove, actor: Principal) -> bool:
    """Check the move against the state of now and start its migration, or skip it with the reason."""
    vm = db.session.execute(select(VM).where(VM.id == m.vm_id).with_for_update(of=VM)).scalar_one_or_none()
    reason = _stale(vm, m)
    if reason is None:
        assert vm is not None
        source, target = db.session.get(Host, vm.host_id), db.session.execute(
            select(Host).where(Host.id == m.target_host_id).with_for_update()).scalar_one_or_none()
        try:
            if source is None or target is None:
                raise ProblemError("host no longer registered", slug="conflict")
            check_target(vm, target, source)
        except ProblemError as exc:
            reason = exc.detail.en
    if reason is not None:
        m.status, m.reason, m.finished_at = MoveStatus.SKIPPED.value, reason, utcnow()
        return False
    assert vm is not None
    before = vm_view(vm)
    vm.migration_target_id = m.target_host_id
    transition(vm, VMState.MIGRATING)
    op = new_operation("vm.migrate", vm, actor)
    audit.record(actor, "vm.migrate", "vm", vm.id, tenant_id=vm.tenant_id, before=before,
                 after=vm_view(vm) | {"plan_id": plan.id, "target_host_id": m.target_host_id})
    enqueue(op)
    m.status, m.operation_id, m.started_at = MoveStatus.RUNNING.value, op.id, utcnow()
    return True


def _stale(vm: VM | None, m: PlanMove) -> str | None:
    if vm is None or vm.state == VMState.DELETED:
        return "the VM was deleted"
    if vm.pinned:
        return "the VM is pinned"
    if vm.host_id != m.source_host_id:
        return "the VM is no longer on the source host"
    if vm.state not in (VMState.ACTIVE, VMState.STOPPED):
        return f"the VM is {vm.state}"
    busy = db.session.execute(select(Operation.id).where(
        Operation.target_id == vm.id, Operation.status.in_([OpStatus.PENDING.value, OpStatus.RUNNING.value]))).first()
    return "the VM has an operation in progress" if busy else None


def _approver(plan: Plan) -> Principal:
    user = db.session.get(User, plan.approved_by) if plan.approved_by else None
    if user is None:
        return SYSTEM
    return Principal(user_id=user.id, username=user.username, role=user.role, tenant_id=user.tenant_id)


def _progress(plan: Plan, moves: list[PlanMove]) -> None:
    op = db.session.get(Operation, plan.operation_id) if plan.operation_id else None
    if op is not None and moves:
        done = sum(m.status not in (MoveStatus.PENDING, MoveStatus.RUNNING) for m in moves)
        op.progress = max(op.progress, int(100 * done / len(moves)))


def _op(plan: Plan, status: OpStatus, error: str | None = None) -> None:
    op = db.session.get(Operation, plan.operation_id) if plan.operation_id else None
    if op is None:
        return
    op.status, op.error = status.value, error
    if status == OpStatus.RUNNING:
        op.started_at = op.started_at or utcnow()
    if status in (OpStatus.SUCCEEDED, OpStatus.FAILED):
        op.finished_at, op.progress = utcnow(), 100


def _finish(plan: Plan, status: PlanStatus, reason: str | None) -> None:
    plan.status, plan.reason, plan.finished_at = status.value, reason, utcnow()
    if plan.kind != "migrate":
        plan.achieved = cluster.balance()
    failures = [f"{m.vm_id}: {m.reason}" for m in plan.moves if m.status == MoveStatus.FAILED]
    _op(plan, OpStatus.SUCCEEDED if status == PlanStatus.SUCCEEDED else OpStatus.FAILED,
        "; ".join(failures) or (reason if status != PlanStatus.SUCCEEDED else None))
    _release(plan.id)
    audit.record(SYSTEM, f"plan.{status.value}", "plan", plan.id,
                 after={"status": plan.status, "reason": reason, "achieved": plan.achieved,
                        "moves": {s.value: sum(m.status == s for m in plan.moves) for s in MoveStatus}})


def _acquire(plan_id: str) -> bool:
    row = db.session.execute(select(ExecutorLock).where(ExecutorLock.name == LOCK).with_for_update()).scalar_one()
    if row.holder not in (None, plan_id):
        holder = db.session.get(Plan, row.holder)
        if holder is not None and holder.status not in TERMINAL:
            return False
        log.warning("taking over the executor lock from finished plan %s", row.holder)
    row.holder, row.acquired_at = plan_id, utcnow()
    return True


def _release(plan_id: str) -> None:
    db.session.execute(update(ExecutorLock).where(ExecutorLock.name == LOCK, ExecutorLock.holder == plan_id)
                       .values(holder=None, acquired_at=None))
