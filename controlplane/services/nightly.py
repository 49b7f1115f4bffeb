"""The nightly optimizer: inside the maintenance window, plan a rebalance when it is worth it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from controlplane import audit
from controlplane.app import settings
from controlplane.context import Principal
from controlplane.db import db
from controlplane.models import Plan, PlanStatus, Role
from controlplane.services import cluster, plans, window
from controlplane.services.tx import transaction

NIGHTLY = Principal(user_id=None, username="nightly", role=Role.OPERATOR.value)


@dataclass(frozen=True)
class Decision:
    action: str  # skipped | awaiting_approval | executing
    reason: str
    plan_id: str | None = None
    objective: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run(now: datetime | None = None) -> Decision:
    s = settings()
    if not window.is_open(now):
        return Decision("skipped", f"outside the maintenance window {s.maintenance_window} ({s.nightly_tz})")
    with transaction():
        busy = db.session.execute(select(Plan.id).where(
            Plan.status.in_([PlanStatus.APPROVED.value, PlanStatus.RUNNING.value]))).first()
        if busy is not None:
            return Decision("skipped", f"plan {busy.id} is approved or running")
        for stale in db.session.execute(select(Plan).where(Plan.origin == "nightly",
                                                           Plan.status == PlanStatus.DRAFT.value)).scalars():
            stale.status, stale.reason = PlanStatus.DISCARDED.value, "superseded by a newer nightly plan"
        objective = float(cluster.balance()["objective"])
        if objective < s.nightly_threshold:
            return Decision("skipped", f"imbalance {objective:.4f} below the threshold {s.nightly_threshold}",
                            objective=objective)
        budget = plans.BudgetData(max_moves=s.nightly_max_moves, max_copy_gib=s.nightly_max_copy_gib,
                                  max_per_host=1, min_gain=s.nightly_min_gain)
        plan = plans.create_in_tx(NIGHTLY, "rebalance", budget, origin="nightly")
        if not plan.moves:
            plan.status, plan.reason = PlanStatus.DISCARDED.value, "no move is worth its cost (hysteresis)"
            audit.record(NIGHTLY, "plan.discard", "plan", plan.id, after=plans.plan_view(plan))
            return Decision("skipped", plan.reason, plan.id, objective)
        if s.nightly_auto_approve:
            plans.approve_in_tx(NIGHTLY, plan)
            return Decision("executing", f"{len(plan.moves)} moves approved automatically", plan.id, objective)
        return Decision("awaiting_approval", f"{len(plan.moves)} moves await an operator", plan.id, objective)
