"""The Celery application and the one way work is handed to workers: by task name.

Services never import task modules. They record an operation (the outbox, :mod:`controlplane.core.outbox`)
and, after commit, :func:`send` the task by its name; the task modules (L3) register the functions under
those names with ``@celery_app.task(name=...)``. A VM operation of kind ``vm.create`` runs the task
``confluencia.vm.create`` (:func:`task_for`), and a test checks that every kind has its task.

Every task, declared with :func:`task`, runs inside the app context of the Flask core app bound with
:func:`bind_app` (the API's app in ``confluencia serve``, the worker's in ``celery -A controlplane.worker``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from celery import Celery
from celery.schedules import crontab
from flask import Flask

from controlplane import context
from controlplane.config import Settings

log = logging.getLogger("confluencia.queue")

# task names of the periodic and plan tasks (VM operations use task_for(kind))
PLAN_ADVANCE = "confluencia.plans.advance"
PLAN_RESUME = "confluencia.plans.resume"
NIGHTLY = "confluencia.plans.nightly"
HOST_HEALTH = "confluencia.hosts.health"
HOST_CHECK = "confluencia.hosts.check"
HOST_GATHER = "confluencia.hosts.gather"
HA_CHECK = "confluencia.ha.check"
RECONCILE = "confluencia.reconcile"
REQUEUE_STALE = "confluencia.ops.requeue_stale"
AUDIT_SEAL = "confluencia.audit.seal"
AUDIT_SIGN = "confluencia.audit.sign"
BALANCE_SAMPLE = "confluencia.cluster.sample"

_bound: dict[str, Flask] = {}


def task_for(kind: str) -> str:
    """The worker task of an operation kind (``vm.create`` -> ``confluencia.vm.create``)."""
    return f"confluencia.{kind}"


celery_app = Celery("confluencia")
celery_app.conf.update(
    task_acks_late=True,  # a task is acknowledged after it ran: a dead worker's task is redelivered
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    timezone="UTC",
)


F = TypeVar("F", bound=Callable[..., Any])


HEADERS = ("request_id", "actor", "tenant")  # the sender's context, carried in each task message's headers


def task(name: str, **options: Any) -> Callable[[F], Any]:
    """Register ``fn`` as the Celery task ``name``, run inside the bound Flask app's context (database
    session, settings) and in the context of whoever sent it (request id, actor, municipality: for logs).
    Every task of the control plane is declared with it."""

    def register(fn: F) -> Any:
        @functools.wraps(fn)
        def in_app_context(*args: Any, **kwargs: Any) -> Any:
            request = celery_app.current_task.request if celery_app.current_task else None
            sent = {h: _header(request, h) for h in HEADERS}
            if not sent["request_id"] and request is not None:
                sent["request_id"] = f"task:{request.id}"  # periodic work: the task's own id
            tokens = [(var, var.set(sent[h])) for h, var in (("request_id", context.request_id),
                                                                ("actor", context.actor), ("tenant", context.tenant))]
            try:
                with bound_app().app_context():
                    return fn(*args, **kwargs)
            finally:
                for var, token in reversed(tokens):
                    var.reset(token)

        return celery_app.task(name=name, **options)(in_app_context)

    return register


def _header(request: Any, name: str) -> str | None:
    """A custom header of the task's message (Celery puts them on the request; older ones under headers)."""
    value = getattr(request, name, None) or (getattr(request, "headers", None) or {}).get(name)
    return str(value) if value else None


def bind_app(app: Flask) -> None:
    """Point the queue at ``app``'s settings and run tasks in its context."""
    settings: Settings = app.extensions["confluencia.settings"]
    celery_app.conf.broker_url = settings.broker_url
    if settings.broker_url.startswith("memory"):  # in-process queue: poll it often, it costs nothing
        celery_app.conf.broker_transport_options = {"polling_interval": 0.05}
    else:  # a task reserved by a worker that died comes back after this (our sweep re-sends sooner)
        celery_app.conf.broker_transport_options = {"visibility_timeout": settings.broker_visibility_s}
    celery_app.conf.task_always_eager = False
    celery_app.conf.timezone = settings.nightly_tz  # crontab entries are local time of the province
    celery_app.conf.beat_schedule = beat_schedule(settings)
    _bound["app"] = app


def bound_app() -> Flask:
    app = _bound.get("app")
    if app is None:
        raise RuntimeError("no Flask app bound to the queue: start workers with `celery -A controlplane.worker`")
    return app


def send(name: str, args: Sequence[Any], countdown: float = 0.0) -> bool:
    """Send task ``name``; False when the broker refused (the caller's record makes it be re-sent)."""
    try:
        headers = {h: v for h, v in (("request_id", context.request_id.get()), ("actor", context.actor.get()),
                                     ("tenant", context.tenant.get())) if v}
        celery_app.send_task(name, args=list(args), countdown=countdown or None, headers=headers)
    except Exception:  # broker down: the operation stays pending, the periodic sweepers re-send it
        log.exception("could not send %s%s; it will be re-sent by the periodic sweep", name, tuple(args))
        return False
    return True


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Periodic tasks for ``celery beat`` (or the embedded beat); the nightly cron is in ``nightly_tz``."""
    fields = settings.nightly_cron.split()
    if len(fields) != 5:
        raise ValueError(f"CONFLUENCIA_NIGHTLY_CRON needs 5 fields, got {settings.nightly_cron!r}")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    return {
        "nightly-optimize": {"task": NIGHTLY,
                             "schedule": crontab(minute=minute, hour=hour, day_of_month=day_of_month,
                                                 month_of_year=month_of_year, day_of_week=day_of_week)},
        "resume-plans": {"task": PLAN_RESUME, "schedule": settings.plan_resume_s},
        "requeue-stale-operations": {"task": REQUEUE_STALE, "schedule": settings.lease_s / 2},
        "host-health": {"task": HOST_HEALTH, "schedule": settings.health_check_s},
        "high-availability": {"task": HA_CHECK, "schedule": settings.health_check_s},
        "reconcile": {"task": RECONCILE, "schedule": 600.0},
        "audit-seal": {"task": AUDIT_SEAL, "schedule": 2.0},
        "audit-sign": {"task": AUDIT_SIGN, "schedule": 60.0},
        "balance-sample": {"task": BALANCE_SAMPLE, "schedule": 600.0},
        **({"host-agent": {"task": HOST_GATHER, "schedule": settings.host_agent_s}} if settings.host_agent_s > 0
           else {}),
    }
