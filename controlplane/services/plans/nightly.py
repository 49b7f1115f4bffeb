"""The nightly optimizer: inside the maintenance window, plan a rebalance when it is worth it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from controlplane.config import settings
from controlplane.context import Principal
from controlplane.core import cluster, window
from controlplane.core.audit import audited
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.models import ACTIVE_PLAN_STATES, Plan, PlanStatus, Role
from controlplane.services.plans.manage import BudgetData, approve_in_tx, create_in_tx

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
        busy = db.session.execute(select(Plan.id).where(Plan.status.in_(ACTIVE_PLAN_STATES))).first()
        if busy is not None:
            return Decision("skipped", f"plan {busy.id} is approved or running")
        for stale in db.session.execute(select(Plan).where(Plan.origin == "nightly",
                                                           Plan.status == PlanStatus.DRAFT.value)).scalars():
            with audited(NIGHTLY, "plan.discard", stale):
                stale.status, stale.reason = PlanStatus.DISCARDED.value, "superseded by a newer nightly plan"
        objective = float(cluster.balance()["objective"])
        if objective < s.nightly_threshold:
            return Decision("skipped", f"imbalance {objective:.4f} below the threshold {s.nightly_threshold}",
                            objective=objective)
        budget = BudgetData(max_moves=s.nightly_max_moves, max_copy_gib=s.nightly_max_copy_gib,
                            max_per_host=1, min_gain=s.nightly_min_gain)
        plan = create_in_tx(NIGHTLY, "rebalance", budget, origin="nightly")
        if not plan.moves:
            with audited(NIGHTLY, "plan.discard", plan):
                plan.status, plan.reason = PlanStatus.DISCARDED.value, "no move is worth its cost (hysteresis)"
            return Decision("skipped", plan.reason, plan.id, objective)
        if s.nightly_auto_approve:
            approve_in_tx(NIGHTLY, plan)
            return Decision("executing", f"{len(plan.moves)} moves approved automatically", plan.id, objective)
        return Decision("awaiting_approval", f"{len(plan.moves)} moves await an operator", plan.id, objective)
