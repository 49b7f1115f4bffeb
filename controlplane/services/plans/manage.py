"""Plans as first-class resources: compute a draft, review it, approve, discard, cancel.

A manual migration is a plan of one move approved at once (:func:`single_move_plan`), so it runs through
the same executor as rebalances and drains and never races them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select

from controlplane.context import Principal
from controlplane.core import cluster
from controlplane.core.audit import audited, created
from controlplane.core.authz import require_operator
from controlplane.core.lookups import host_or_422
from controlplane.core.outbox import kick_plan, new_operation
from controlplane.core.tx import check_version, paginate, transaction
from controlplane.db import db
from controlplane.errors import InvalidState, Msg, ValidationFailed, not_found
from controlplane.models import ACTIVE_PLAN_STATES, VM, Host, MoveStatus, OpKind, Plan, PlanMove, PlanStatus
from controlplane.models.base import utcnow
from placement import Budget, Move, PlacementInputError, plan_drain, plan_rebalance
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
    created(actor, f"plan.create.{kind}", plan)
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
        return _store(actor, kind, origin, computed, asdict(budget), on_failure)
    if kind == "drain":
        target = host_or_422(host)
        computed = plan_drain(cluster.snapshot(for_drain=True), target.id, budget.max_per_host)
        return _store(actor, kind, origin, computed, asdict(budget), on_failure, target.id)
    raise ValidationFailed(f"unknown plan kind {kind!r}", errors={"kind": ["rebalance|drain"]})


def single_move_plan(actor: Principal, vm: VM, target: Host, origin: str = "manual") -> Plan:
    """One VM's migration (an operator's, or a resize's that needs room), as a plan of one move, approved at
    once. In a transaction."""
    computed = PlacementPlan(moves=(Move(vm=vm.id, source=vm.host_id or "", target=target.id,
                                         cost_ram_mib=float(vm.ram_mib), gain=0.0, wave=1),),
                             objective_before=0.0, objective_after=0.0, stdev_before={}, stdev_after={},
                             spread_before={}, spread_after={})
    plan = _store(actor, "migrate", origin, computed, {"max_moves": 1, "max_per_host": 1}, "stop")
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
    op = new_operation(OpKind.PLAN_EXECUTE, actor, target_type="plan", target_id=plan.id, tenant_id=None)
    with audited(actor, "plan.approve", plan, operation=op):
        plan.status, plan.approved_by, plan.approved_at = PlanStatus.APPROVED.value, actor.user_id, utcnow()
        plan.operation_id = op.id
    kick_plan(plan)


def discard(actor: Principal, plan_id: str) -> Plan:
    with transaction():
        plan = get_plan(actor, plan_id, lock=True)
        if plan.status != PlanStatus.DRAFT:
            raise InvalidState(Msg(f"Only a draft plan can be discarded; this one is {plan.status}.",
                                   f"Solo un plan en borrador puede descartarse; este está en {plan.status}."))
        with audited(actor, "plan.discard", plan):
            plan.status = PlanStatus.DISCARDED.value
    return plan


def cancel(actor: Principal, plan_id: str) -> Plan:
    """Stop after the migrations in flight; moves not started yet are cancelled."""
    with transaction():
        plan = get_plan(actor, plan_id, lock=True)
        if plan.status not in ACTIVE_PLAN_STATES:
            raise InvalidState(Msg(f"Only an approved or running plan can be cancelled; this one is {plan.status}.",
                                   f"Solo un plan aprobado o en ejecución puede cancelarse; este está en "
                                   f"{plan.status}."))
        with audited(actor, "plan.cancel", plan):
            plan.cancel_requested = True
        kick_plan(plan)
    return plan


def progress(plan: Plan) -> dict[str, Any]:
    """Moves per status; ``done`` counts the moves that ran or were skipped (a cancelled plan of 7 moves
    of which 2 ran reads 2/7, with 5 cancelled), ``percent`` how much of the plan is settled."""
    counts = {s.value: 0 for s in MoveStatus}
    for m in plan.moves:
        counts[m.status] += 1
    total = len(plan.moves)
    done = counts["succeeded"] + counts["failed"] + counts["skipped"]
    settled = done + counts["cancelled"]
    return {"total": total, "done": done, "percent": 100 if total == 0 else int(100 * settled / total), **counts}
