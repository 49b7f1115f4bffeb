"""Celery tasks of VM operations: ``confluencia.<kind>`` runs the worker half of that use case, through the
shared runner (:mod:`controlplane.tasks.runner`: lease, heartbeat, retries, give-up)."""

from __future__ import annotations

from typing import Any

from controlplane.models import OpKind
from controlplane.queue import task, task_for
from controlplane.services.vms import create, delete, evacuate, migrate, power, resize
from controlplane.tasks.runner import RETRY, run


@task(task_for(OpKind.VM_CREATE), bind=True, **RETRY)
def vm_create(self: Any, op_id: str) -> None:
    run(self, op_id, create.run_create, create.give_up)


@task(task_for(OpKind.VM_DELETE), bind=True, **RETRY)
def vm_delete(self: Any, op_id: str) -> None:
    run(self, op_id, delete.run_delete, delete.give_up)


@task(task_for(OpKind.VM_START), bind=True, **RETRY)
def vm_start(self: Any, op_id: str) -> None:
    run(self, op_id, lambda op: power.run_power(op, "start"), lambda op, why: power.give_up(op, why, "start"))


@task(task_for(OpKind.VM_STOP), bind=True, **RETRY)
def vm_stop(self: Any, op_id: str) -> None:
    run(self, op_id, lambda op: power.run_power(op, "stop"), lambda op, why: power.give_up(op, why, "stop"))


@task(task_for(OpKind.VM_MIGRATE), bind=True, **RETRY)
def vm_migrate(self: Any, op_id: str) -> None:
    run(self, op_id, migrate.run_migrate, migrate.settle_failed_migration)


@task(task_for(OpKind.VM_RESIZE), bind=True, **RETRY)
def vm_resize(self: Any, op_id: str) -> None:
    run(self, op_id, resize.run_resize, resize.give_up)


@task(task_for(OpKind.VM_EVACUATE), bind=True, **RETRY)
def vm_evacuate(self: Any, op_id: str) -> None:
    run(self, op_id, evacuate.run_evacuate, evacuate.give_up)
