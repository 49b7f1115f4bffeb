"""Celery tasks for VM operations: thin wrappers around controlplane.services.lifecycle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery.exceptions import Retry

from agents import DriverError
from controlplane import context
from controlplane.app import settings
from controlplane.services import lifecycle, migrations, reconcile
from controlplane.services.operations import stale_operations
from controlplane.tasks.celery_app import celery_app, flask_app

MAX_RETRIES = 3
BUSY_RETRIES = 200  # a lease lasts at most 15 minutes; a retry comes at most every 10 s


def _backoff(retries: int) -> float:
    return float(min(2 ** retries, 30))


def _run(task: Any, op_id: str, fn: Any, *args: Any, reschedule: bool = False,
         give_up: Callable[[str, str], None] | None = None) -> None:
    with flask_app().app_context():
        _run_in_context(task, op_id, fn, *args, reschedule=reschedule, give_up=give_up)


def _run_in_context(task: Any, op_id: str, fn: Any, *args: Any, reschedule: bool,
                    give_up: Callable[[str, str], None] | None) -> None:
    token = context.worker_id.set(task.request.id)
    try:
        fn(op_id, *args)
    except lifecycle.Finished:
        return  # another delivery finished it first
    except lifecycle.Busy as busy:  # a duplicate delivery: wait for the one holding the lease
        raise task.retry(countdown=busy.retry_in, max_retries=BUSY_RETRIES) from busy
    except DriverError as exc:
        if not exc.transient:
            lifecycle.fail_unexpected(op_id, exc)
            raise
        if task.request.retries < MAX_RETRIES:
            raise task.retry(exc=exc, countdown=_backoff(task.request.retries)) from exc
        reason = f"{type(exc).__name__}: {exc.message} (after {MAX_RETRIES} retries)"
        if give_up is not None:
            give_up(op_id, reason)
        else:
            lifecycle.give_up(op_id, reason, reschedule_build=reschedule)
    except Retry:
        raise
    except Exception as exc:  # a bug or a lost database: never leave the operation "running" forever
        lifecycle.fail_unexpected(op_id, exc)
        raise
    finally:
        context.worker_id.reset(token)


@celery_app.task(bind=True, name="confluencia.vm.create", max_retries=MAX_RETRIES)
def vm_create(self: Any, op_id: str) -> None:
    _run(self, op_id, lifecycle.run_create, reschedule=True)


@celery_app.task(bind=True, name="confluencia.vm.delete", max_retries=MAX_RETRIES)
def vm_delete(self: Any, op_id: str) -> None:
    _run(self, op_id, lifecycle.run_delete)


@celery_app.task(bind=True, name="confluencia.vm.start", max_retries=MAX_RETRIES)
def vm_start(self: Any, op_id: str) -> None:
    _run(self, op_id, lifecycle.run_power, "start")


@celery_app.task(bind=True, name="confluencia.vm.stop", max_retries=MAX_RETRIES)
def vm_stop(self: Any, op_id: str) -> None:
    _run(self, op_id, lifecycle.run_power, "stop")


@celery_app.task(bind=True, name="confluencia.vm.migrate", max_retries=MAX_RETRIES)
def vm_migrate(self: Any, op_id: str) -> None:
    _run(self, op_id, migrations.run_migrate, give_up=migrations.settle_failed_migration)


@celery_app.task(name="confluencia.reconcile")
def reconcile_all() -> dict[str, Any]:
    """Compare the database with every host's inventory; fix what is safe (periodic)."""
    with flask_app().app_context():
        return reconcile.reconcile(fix=True).as_dict()


@celery_app.task(name="confluencia.ops.requeue_stale")
def requeue_stale() -> int:
    """Re-send operations whose task never reached a worker (the operations table is the outbox)."""
    from controlplane.tasks.dispatch import dispatch

    with flask_app().app_context():
        ops = [(op.kind, op.id) for op in stale_operations(settings().operation_stale_s)]
    for kind, op_id in ops:
        dispatch(kind, op_id)
    return len(ops)
