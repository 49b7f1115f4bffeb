"""Celery tasks of plans: one execution step at a time, the periodic safety net, the nightly optimizer."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from controlplane import queue
from controlplane.db import db
from controlplane.models import ACTIVE_PLAN_STATES, Plan
from controlplane.queue import task
from controlplane.services.plans import execute, nightly


@task(queue.PLAN_ADVANCE, acks_late=True)
def plan_advance(plan_id: str) -> None:
    """One step of a plan; schedules the next one while the plan is not over (no thread waits)."""
    delay = execute.advance(plan_id)
    if delay is not None:
        queue.send(queue.PLAN_ADVANCE, [plan_id], delay)


@task(queue.PLAN_RESUME)
def resume_plans() -> int:
    """Periodic safety net: re-schedule approved/running plans (a lost message, a restarted broker)."""
    ids = list(db.session.execute(select(Plan.id).where(Plan.status.in_(ACTIVE_PLAN_STATES))).scalars())
    db.session.rollback()
    for plan_id in ids:
        queue.send(queue.PLAN_ADVANCE, [plan_id])
    return len(ids)


@task(queue.NIGHTLY)
def nightly_optimize() -> dict[str, Any]:
    return nightly.run().as_dict()
