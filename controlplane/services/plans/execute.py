"""The executor: the one component that moves VMs. Runs approved plans wave by wave.

``advance(plan_id)`` is one step, called by the Celery task ``confluencia.plans.advance`` that
re-schedules itself while the plan runs (no worker thread ever blocks waiting for migrations). A database
lock (``executor_locks``) lets one plan execute at a time, manual or nightly. Before each move starts it is
checked again against the current state (VM deleted or moved, target full or disabled, anti-affinity) and
skipped with the reason if stale. Cancelling stops after the migrations in flight; ``on_failure = stop``
does the same after a failed move. The decisions themselves are in :mod:`.rules`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, true, update

from controlplane.context import SYSTEM, Principal
from controlplane.core import cluster, window
from controlplane.core.audit import audited
from controlplane.core.lookups import operation_in_progress
from controlplane.core.outbox import enqueue, kick_plan, vm_operation
from controlplane.core.state_machine import transition
from controlplane.core.targets import check_target
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.errors import ProblemError
from controlplane.models import (
    ACTIVE_PLAN_STATES,
    FINISHED_PLAN_STATES,
    VM,
    ExecutorLock,
    Host,
    MoveStatus,
    Operation,
    OpKind,
    OpStatus,
    Plan,
    PlanMove,
    PlanStatus,
    User,
    VMState,
)
from controlplane.models.base import utcnow
from controlplane.services.plans import rules

log = logging.getLogger("confluencia.executor")
LOCK = "plan-executor"
RESUME_GRACE_S = 30.0  # a chain later than this is considered lost


def advance(plan_id: str, token: str | None = None) -> float | None:
    """Do what can be done now; seconds until the next step, or None when the plan is over.

    ``token`` is the step token of the chain calling it: a chain whose token is not the plan's any more
    was superseded (by approve, cancel or resume) and ends here. None (a direct call) skips the check."""
    with transaction():
        plan = db.session.execute(select(Plan).where(Plan.id == plan_id).with_for_update()).scalar_one_or_none()
        if plan is None or (token is not None and token != plan.step_token):
            return None
        delay = _advance(plan)
        plan.next_step_at = None if delay is None else utcnow() + timedelta(seconds=delay)
        return delay


def resume_overdue(grace_s: float = RESUME_GRACE_S, *, every: bool = False) -> list[str]:
    """Approved or running plans whose chain of steps is overdue by more than ``grace_s`` (its message was
    lost, its worker died): a new chain starts for each. Plans whose chain is alive are left alone, unless
    ``every`` (the process that ran every chain restarted)."""
    due = utcnow() - timedelta(seconds=grace_s)
    overdue = Plan.next_step_at.is_(None) | (Plan.next_step_at < due)
    with transaction():
        plans = list(db.session.execute(select(Plan).where(
            Plan.status.in_(ACTIVE_PLAN_STATES), true() if every else overdue).with_for_update(
            skip_locked=True)).scalars())
        for plan in plans:
            kick_plan(plan)
        return [p.id for p in plans]


def _advance(plan: Plan) -> float | None:
    if plan.status in FINISHED_PLAN_STATES or plan.status == PlanStatus.DRAFT:
        return None
    if plan.status == PlanStatus.APPROVED:
        nightly = plan.origin == "nightly"
        admission = rules.admit(plan.cancel_requested, nightly, not nightly or window.is_open())
        if admission == rules.Admission.CANCEL:
            _finish(plan, PlanStatus.CANCELLED, "cancelled before it started")
            return None
        if admission == rules.Admission.WAIT_WINDOW:
            return rules.WINDOW_WAIT_S
        if not _acquire(plan.id):
            return rules.LOCK_WAIT_S
        plan.status, plan.started_at = PlanStatus.RUNNING.value, utcnow()
        _op(plan, OpStatus.RUNNING)
    return _step(plan)


def _step(plan: Plan) -> float | None:
    moves = list(plan.moves)
    for m in moves:
        if m.status == MoveStatus.RUNNING:
            _sync_move(m)
    nightly = plan.origin == "nightly"
    step = rules.next_step([rules.MoveLike(m.status, m.wave) for m in moves], on_failure=plan.on_failure,
                           cancel_requested=plan.cancel_requested, nightly=nightly,
                           window_open=not nightly or window.is_open())
    if step.stop_now:
        plan.cancel_requested, plan.reason = True, "stopped after a failed move (policy: stop)"
    _progress(plan, moves)
    if step.kind == rules.StepKind.POLL:
        return rules.POLL_S
    if step.kind == rules.StepKind.CANCEL_PENDING:
        why = plan.reason or "plan cancelled"
        for m in moves:
            if m.status == MoveStatus.PENDING:
                m.status, m.reason, m.finished_at = MoveStatus.CANCELLED.value, why, utcnow()
        step = rules.next_step([rules.MoveLike(m.status, m.wave) for m in moves], on_failure=plan.on_failure,
                               cancel_requested=plan.cancel_requested, nightly=nightly, window_open=True)
    if step.kind == rules.StepKind.WAIT_WINDOW:
        return rules.WINDOW_WAIT_S
    if step.kind == rules.StepKind.START_WAVE:
        plan.current_wave = step.wave if step.wave is not None else plan.current_wave
        approver = _approver(plan)
        started = sum(_start_move(plan, m, approver) for m in moves
                      if m.status == MoveStatus.PENDING and m.wave == step.wave)
        return rules.POLL_S if started else 0.0
    left: list[str] = []
    if plan.kind == "drain" and plan.host_id is not None:
        left = list(db.session.execute(select(VM.id).where(
            VM.host_id == plan.host_id, VM.state != VMState.DELETED.value).order_by(VM.id)).scalars())
    status, reason = rules.outcome(plan.kind, [m.status for m in moves], on_failure=plan.on_failure,
                                   cancel_requested=plan.cancel_requested, reason=plan.reason, left_on_host=left)
    _finish(plan, status, reason)
    return None


def _sync_move(m: PlanMove) -> None:
    op = db.session.get(Operation, m.operation_id) if m.operation_id else None
    if op is None or op.status in (OpStatus.PENDING, OpStatus.RUNNING):
        return
    m.status = (MoveStatus.SUCCEEDED if op.status == OpStatus.SUCCEEDED else MoveStatus.FAILED).value
    m.reason, m.finished_at = op.error, utcnow()


def _start_move(plan: Plan, m: PlanMove, actor: Principal) -> bool:
    """Check the move against the state of now and start its migration, or skip it with the reason."""
    vm = db.session.execute(select(VM).where(VM.id == m.vm_id).with_for_update(of=VM)).scalar_one_or_none()
    busy = operation_in_progress(vm.id) if vm is not None else None
    if busy is not None and (busy.params or {}).get("move_plan_id") == plan.id:
        busy = None  # a resize waiting for this very move to a host with room
    facts = None if vm is None else rules.VMFacts(vm.state, vm.host_id, bool(vm.pinned), busy is not None)
    reason = rules.stale_reason(facts, m.source_host_id)
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
    op = vm_operation(OpKind.VM_MIGRATE, vm, actor)
    with audited(actor, "vm.migrate", vm, operation=op, plan_id=plan.id):
        vm.migration_target_id = m.target_host_id  # the target's claim while the guest is copied
        transition(vm, VMState.MIGRATING)
    enqueue(op)
    m.status, m.operation_id, m.started_at = MoveStatus.RUNNING.value, op.id, utcnow()
    return True


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
    moves = {s.value: sum(m.status == s for m in plan.moves) for s in MoveStatus}
    with audited(SYSTEM, f"plan.{status.value}", plan, moves=moves) as change:
        plan.status, plan.reason, plan.finished_at = status.value, reason, utcnow()
        if plan.kind != "migrate":
            plan.achieved = cluster.balance()
            cluster.record_balance(plan.achieved)  # the chart shows where each plan left the data center
        change.extra["achieved"] = plan.achieved
        failures = [f"{m.vm_id}: {m.reason}" for m in plan.moves if m.status in rules.unmet(plan.kind)]
        _op(plan, OpStatus.SUCCEEDED if status == PlanStatus.SUCCEEDED else OpStatus.FAILED,
            "; ".join(failures) or (reason if status != PlanStatus.SUCCEEDED else None))
        _release(plan.id)


def _acquire(plan_id: str) -> bool:
    row = db.session.execute(select(ExecutorLock).where(ExecutorLock.name == LOCK).with_for_update()).scalar_one()
    if row.holder not in (None, plan_id):
        holder = db.session.get(Plan, row.holder)
        if holder is not None and holder.status not in FINISHED_PLAN_STATES:
            return False
        log.warning("taking over the executor lock from finished plan %s", row.holder)
    row.holder, row.acquired_at = plan_id, utcnow()
    return True


def _release(plan_id: str) -> None:
    db.session.execute(update(ExecutorLock).where(ExecutorLock.name == LOCK, ExecutorLock.holder == plan_id)
                       .values(holder=None, acquired_at=None))
