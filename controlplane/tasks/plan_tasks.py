"""Celery tasks of the operators' side: plan execution steps, the nightly optimizer, health checks."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from controlplane.db import db
from controlplane.models import Plan, PlanStatus
from controlplane.services import executor, health, nightly
from controlplane.tasks.celery_app import celery_app, flask_app
from controlplane.tasks.dispatch import dispatch_plan


@celery_app.task(name="confluencia.plans.advance", acks_late=True)
def plan_advance(plan_id: str) -> None:
    """One step of a plan; schedules the next one while the plan is not over (no thread waits)."""
    with flask_app().app_context():
        delay = executor.advance(plan_id)
    if delay is not None:
        dispatch_plan(plan_id, delay)


@celery_app.task(name="confluencia.plans.resume")
def resume_plans() -> int:
    """Periodic safety net: re-schedule approved/running plans (a lost message, a restarted broker)."""
    with flask_app().app_context():
        ids = list(db.session.execute(select(Plan.id).where(
            Plan.status.in_([PlanStatus.APPROVED.value, PlanStatus.RUNNING.value]))).scalars())
    for plan_id in ids:
        dispatch_plan(plan_id)
    return len(ids)


@celery_app.task(name="confluencia.plans.nightly")
def nightly_optimize() -> dict[str, Any]:
    with flask_app().app_context():
        return nightly.run().as_dict()


@celery_app.task(name="confluencia.hosts.health")
def hosts_health() -> dict[str, str]:
    with flask_app().app_context():
        return health.check_hosts()
