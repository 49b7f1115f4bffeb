"""Celery tasks of plans: one execution step at a time, the periodic safety net, the nightly optimizer."""

from __future__ import annotations

from typing import Any

from controlplane import queue
from controlplane.queue import task
from controlplane.services.plans import execute, nightly


@task(queue.PLAN_ADVANCE, acks_late=True)
def plan_advance(plan_id: str, token: str = "") -> None:
    """One step of a plan; the chain schedules its next step while the plan is not over (no thread waits).
    A step of a superseded chain (its token is not the plan's any more) does nothing and ends the chain."""
    delay = execute.advance(plan_id, token)
    if delay is not None:
        queue.send(queue.PLAN_ADVANCE, [plan_id, token], delay)


@task(queue.PLAN_RESUME)
def resume_plans() -> int:
    """Periodic safety net: a new chain for each approved/running plan whose chain is overdue (a lost
    message, a worker that died, a restarted broker). Plans whose chain is alive are left alone."""
    return len(execute.resume_overdue())


@task(queue.NIGHTLY)
def nightly_optimize() -> dict[str, Any]:
    return nightly.run().as_dict()
