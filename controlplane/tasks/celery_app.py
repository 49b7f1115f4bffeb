"""The Celery application, bound to a Flask core app whose app context every task runs in."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.schedules import crontab
from flask import Flask

from controlplane.config import Settings

_flask_app: dict[str, Flask] = {}


def flask_app() -> Flask:
    """The Flask core app the tasks run in (created from the environment in a standalone worker)."""
    app = _flask_app.get("app")
    if app is None:
        from controlplane.app import create_core_app

        app = create_core_app()
    return app


celery_app = Celery("confluencia")
celery_app.conf.update(
    task_acks_late=True,  # a task is acknowledged after it ran: a dead worker's task is redelivered
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": 3600},
    timezone="UTC",
)


def init_celery(app: Flask) -> Celery:
    settings: Settings = app.extensions["confluencia.settings"]
    celery_app.conf.broker_url = settings.broker_url
    if settings.broker_url.startswith("memory"):  # in-process queue: poll it often, it costs nothing
        celery_app.conf.broker_transport_options = {"polling_interval": 0.05}
    celery_app.conf.task_always_eager = False
    _flask_app["app"] = app
    celery_app.conf.timezone = settings.nightly_tz  # crontab entries are local time of the province
    celery_app.conf.beat_schedule = beat_schedule(settings)
    import controlplane.tasks.plan_tasks
    import controlplane.tasks.vm_tasks  # noqa: F401

    return celery_app


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Periodic tasks for ``celery beat`` (or ``worker -B``); the nightly cron is in ``nightly_tz``."""
    fields = settings.nightly_cron.split()
    if len(fields) != 5:
        raise ValueError(f"CONFLUENCIA_NIGHTLY_CRON needs 5 fields, got {settings.nightly_cron!r}")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    return {
        "nightly-optimize": {"task": "confluencia.plans.nightly",
                             "schedule": crontab(minute=minute, hour=hour, day_of_month=day_of_month,
                                                 month_of_year=month_of_year, day_of_week=day_of_week)},
        "resume-plans": {"task": "confluencia.plans.resume", "schedule": 60.0},
        "requeue-stale-operations": {"task": "confluencia.ops.requeue_stale", "schedule": 60.0},
        "host-health": {"task": "confluencia.hosts.health", "schedule": settings.health_check_s},
        "reconcile": {"task": "confluencia.reconcile", "schedule": 600.0},
    }
