"""Operation kind -> Celery task. The single place where operations are sent to workers."""

from __future__ import annotations

import logging

log = logging.getLogger("confluencia.dispatch")


def dispatch(kind: str, op_id: str) -> None:
    from controlplane.tasks import vm_tasks

    task = {"vm.create": vm_tasks.vm_create, "vm.delete": vm_tasks.vm_delete,
            "vm.start": vm_tasks.vm_start, "vm.stop": vm_tasks.vm_stop, "vm.migrate": vm_tasks.vm_migrate}[kind]
    try:
        task.apply_async(args=[op_id])
    except Exception:  # broker down: the operation stays pending and requeue_stale picks it up
        log.exception("could not enqueue %s %s; it will be re-sent by requeue_stale", kind, op_id)


def dispatch_plan(plan_id: str, countdown: float = 0.0) -> None:
    """Schedule the next step of a plan's execution."""
    from controlplane.tasks import plan_tasks

    try:
        plan_tasks.plan_advance.apply_async(args=[plan_id], countdown=countdown or None)
    except Exception:  # broker down: the periodic resume_plans task picks the plan up again
        log.exception("could not schedule plan %s", plan_id)
