"""Plans as first-class resources: compute (draft), review, approve, discard, cancel.

Every migration, manual or nightly, is a move of a plan and runs through the one executor
(``controlplane.services.executor``): an operator's single migration is a one-move plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from controlplane import audit
from controlplane.context import Principal
from controlplane.db import db
from controlplane.errors import InvalidState, Msg, ValidationFailed, not_found
from controlplane.models import VM, Host, MoveStatus, Operation, OpStatus, Plan, PlanMove, PlanStatus
from controlplane.services import cluster
from controlplane.services.tenants import require_operator
from controlplane.services.tx import after_commit, check_version, paginate, transaction
from placement import Budget, PlacementInputError, plan_drain, plan_rebalance
from placement import Plan as PlacementPlan


@dataclass(frozen=True)
class BudgetData:
    max_moves: int | None = 20
    max_copy_gib: float | None = None
    max_per_host: int = 1
    min_gain: float = 0.05

    def to_placement(self) -> Budget:
        try:
            return Budget(max_moves=self.max_moves, max_copy_gib=self.max_copy_gib,
                          max_per_host=self.max_per_host, min_gain=self.min_gain)
        except PlacementInputError as exc:
            raise ValidationFailed(str(exc), errors={"budget": [str(exc)]}) from exc


def plan_view(p: Plan) -> dict[str, Any]:
    return {"kind": p.kind, "origin": p.origin, "status": p.status, "moves": len(p.moves),
            "cost_ram_mib": p.cost_ram_mib, "budget": p.budget}


def _store(actor: Principal, kind: str, origin: str, computed: PlacementPlan, budget: dict[str, Any],
           on_failure: str, host_id: str | None = None) -> Plan:
    predicted = {k: v for k, v in computed.to_dict().items() if k not in ("moves", "unplaced")}
    plan = Plan(kind=kind, origin=origin, status=PlanStatus.DRAFT.value, host_id=host_id, budget=budget,
                on_failure=on_failure, predicted=predicted, unplaced=dict(computed.unplaced),
                cost_ram_mib=computed.copy_ram_mib, created_by=actor.user_id)
    db.session.add(plan)
    db.session.flush()
    for seq, m in enumerate(computed.moves):
        db.session.add(PlanMove(plan_id=plan.id, seq=seq, wave=m.wave, vm_id=m.vm, source_host_id=m.source,
                                target_host_id=m.target, cost_ram_mib=m.cost_ram_mib, gain=m.gain))
    db.session.flush()
    db.session.refresh(plan)
    audit.record(actor, f"plan.create.{kind}", "plan", plan.id, after=plan_view(plan))
    return plan


def create_plan(actor: Principal, kind: str, budget: BudgetData, *, host: str | None = None,
                on_failure: str = "continue", origin: str = "manual") -> Plan:
    """Compute a rebalance or drain plan against the current state and store it as a draft."""
    require_operator(actor)
    with transaction():
        return create_in_tx(actor, kind, budget, host=host, on_failure=on_failure, origin=origin)


def create_in_tx(actor: Principal, kind: str, budget: BudgetData, *, host: str | None = None,
                 on_failure: str = "continue", origin: str = "manual") -> Plan:
    if on_failure not in ("continue", "stop"):
        raise ValidationFailed("on_failure must be continue or stop", errors={"on_failure": ["continue|stop"]})
    if kind == "rebalance":
        computed = plan_rebalance(cluster.snapshot(), budget.to_placement())
        return _store(actor, kind, origin, computed, budget.__dict__, on_failure)
    if kind == "drain":
        target = _host(host)
        computed = plan_drain(cluster.snapshot(for_drain=True), target.id, budget.max_per_host)
        return _store(actor, kind, origin, computed, budget.__dict__, on_failure, target.id)
    raise ValidationFailed(f"unknown plan kind {kind!r}", errors={"kind": ["rebalance|drain"]})


def _host(ref: str | None) -> Host:
    host = db.session.execute(select(Host).where((Host.id == ref) | (Host.name == ref))).scalar_one_or_none()
    if host is None:
        raise ValidationFailed(f"Unknown host {ref!r}.", errors={"host": ["Unknown host."]})
    return host


def single_move_plan(actor: Principal, vm: VM, target: Host) -> Plan:
    """An operator's migration of one VM, as a plan of one move (approved at once). In a transaction."""
    from placement import Move

    computed = PlacementPlan(moves=(Move(vm=vm.id, source=vm.host_id or "", target=target.id,
                                         cost_ram_mib=float(vm.ram_mib), gain=0.0, wave=1),),
                             objective_before=0.0, objective_after=0.0, stdev_before={}, stdev_after={},
                             spread_before={}, spread_after={})
    plan = _store(actor, "migrate", "manual", computed, {"max_moves": 1, "max_per_host": 1}, "stop")
    approve_in_tx(actor, plan)
    return plan


def get_plan(actor: Principal, plan_id: str, *, lock: bool = False) -> Plan:
    require_operator(actor)
    stmt = select(Plan).where(Plan.id == plan_id)
    plan = db.session.execute(stmt.with_for_update() if lock else stmt).scalar_one_or_none()
    if plan is None:
        raise not_found("plan", plan_id)
    return plan


def list_plans(actor: Principal, status: str | None, kind: str | None, limit: int,
               offset: int) -> tuple[list[Plan], int]:
    require_operator(actor)
    stmt = select(Plan).order_by(Plan.created_at.desc(), Plan.id)
    if status:
        stmt = stmt.where(Plan.status == status)
    if kind:
        stmt = stmt.where(Plan.kind == kind)
    return paginate(stmt, limit, offset)


def approve(actor: Principal, plan_id: str, if_match: int | None = None) -> Plan:
    with transaction():
        plan = get_plan(actor, plan_id, lock=True)
        check_version(plan.version, if_match)
        if plan.status != PlanStatus.DRAFT:
            raise InvalidState(Msg(f"Only a draft plan can be approved; this one is {plan.status}.",
                                   f"Solo un plan en borrador puede aprobarse; este está en {plan.status}."))
        approve_in_tx(actor, plan)
    return plan


def approve_in_tx(actor: Principal, plan: Plan) -> None:
    from controlplane.models.base import utcnow

    plan.status, plan.approved_by, plan.approved_at = PlanStatus.APPROVED.value, actor.user_id, utcnow()
    op = Operation(kind="plan.execute", tenant_id=None, target_type="plan", target_id=plan.id,
                   status=OpStatus.PENDING.value, created_by=actor.user_id)
    db.session.add(op)
    db.session.flush()
    plan.operation_id = op.id
    audit.record(actor, "plan.approve", "plan", plan.id, after=plan_view(plan))
    plan_id = plan.id
    after_commit(lambda: kick(plan_id))


def kick(plan_id: str, countdown: float = 0.0) -> None:
    from controlplane.tasks.dispatch import dispatch_plan

    dispatch_plan(plan_id, countdown)


def discard(actor: Principal, plan_id: str) -> Plan:
    with transaction():
        plan = get_plan(actor, plan_id, lock=True)
        if plan.status != PlanStatus.DRAFT:
            raise InvalidState(Msg(f"Only a draft plan can be discarded; this one is {plan.status}.",
                                   f"Solo un plan en borrador puede descartarse; este está en {plan.status}."))
        plan.status = PlanStatus.DISCARDED.value
        audit.record(actor, "plan.discard", "plan", plan.id, after=plan_view(plan))
    return plan


def cancel(actor: Principal, plan_id: str) -> Plan:
    """Stop after the migrations in flight; moves not started yet are cancelled."""
    with transaction():
        plan = get_plan(actor, plan_id, lock=True)
        if plan.status not in (PlanStatus.APPROVED, PlanStatus.RUNNING):
            raise InvalidState(Msg(f"Only an approved or running plan can be cancelled; this one is {plan.status}.",
                                   f"Solo un plan aprobado o en ejecución puede cancelarse; este está en "
                                   f"{plan.status}."))
        plan.cancel_requested = True
        audit.record(actor, "plan.cancel", "plan", plan.id, after=plan_view(plan))
        plan_id = plan.id
        after_commit(lambda: kick(plan_id))
    return plan


def progress(plan: Plan) -> dict[str, Any]:
    counts = {s.value: 0 for s in MoveStatus}
    for m in plan.moves:
        counts[m.status] += 1
    total = len(plan.moves)
    done = total - counts["pending"] - counts["running"]
    return {"total": total, "done": done, "percent": 100 if total == 0 else int(100 * done / total), **counts}


def start_drain_in_tx(actor: Principal, host: Host) -> Plan:
    """Entering maintenance: refuse if pinned VMs live there, else plan the drain and approve it."""
    pinned = sorted(db.session.execute(select(VM.name).where(
        VM.host_id == host.id, VM.pinned, VM.state != "DELETED")).scalars())
    if pinned:
        raise InvalidState(Msg(
            f"Host {host.name} holds pinned VMs ({', '.join(pinned)}); unpin them before maintenance.",
            f"El host {host.name} tiene VMs fijadas ({', '.join(pinned)}); desfíjelas antes del mantenimiento."),
            pinned=pinned)
    busy = db.session.execute(select(Plan.id).where(
        Plan.status.in_([PlanStatus.APPROVED.value, PlanStatus.RUNNING.value]), Plan.kind == "drain",
        Plan.host_id == host.id)).first()
    if busy is not None:
        return db.session.get(Plan, busy.id)  # type: ignore[return-value]
    plan = create_in_tx(actor, "drain", BudgetData(max_moves=None, max_per_host=2), host=host.id,
                        origin="maintenance")
    approve_in_tx(actor, plan)
    return plan


def stop_drains_in_tx(actor: Principal, host: Host) -> None:
    """Leaving maintenance: a drain of this host still running is cancelled (moves in flight finish)."""
    for plan in db.session.execute(select(Plan).where(
            Plan.kind == "drain", Plan.host_id == host.id,
            Plan.status.in_([PlanStatus.APPROVED.value, PlanStatus.RUNNING.value]))).scalars():
        plan.cancel_requested = True
        plan.reason = "host left maintenance"
        audit.record(actor, "plan.cancel", "plan", plan.id, after=plan_view(plan))
        plan_id = plan.id
        after_commit(lambda plan_id=plan_id: kick(plan_id))  # type: ignore[misc]
