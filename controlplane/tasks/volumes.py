"""Celery tasks of data volumes (``confluencia.volume.attach|detach|extend|delete``), through the shared runner."""

from __future__ import annotations

from typing import Any

from controlplane.models import OpKind
from controlplane.queue import task, task_for
from controlplane.services import volumes
from controlplane.tasks.runner import RETRY, run


def _run(self: Any, op_id: str, kind: OpKind) -> None:
    run(self, op_id, lambda op: volumes.run_volume(op, kind), volumes.give_up)


@task(task_for(OpKind.VOLUME_ATTACH), bind=True, **RETRY)
def volume_attach(self: Any, op_id: str) -> None:
    _run(self, op_id, OpKind.VOLUME_ATTACH)


@task(task_for(OpKind.VOLUME_DETACH), bind=True, **RETRY)
def volume_detach(self: Any, op_id: str) -> None:
    _run(self, op_id, OpKind.VOLUME_DETACH)


@task(task_for(OpKind.VOLUME_EXTEND), bind=True, **RETRY)
def volume_extend(self: Any, op_id: str) -> None:
    _run(self, op_id, OpKind.VOLUME_EXTEND)


@task(task_for(OpKind.VOLUME_DELETE), bind=True, **RETRY)
def volume_delete(self: Any, op_id: str) -> None:
    _run(self, op_id, OpKind.VOLUME_DELETE)
