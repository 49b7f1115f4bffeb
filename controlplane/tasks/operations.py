"""Periodic sweeps: re-send operations that never reached a worker, and reconcile with the hypervisors."""

from __future__ import annotations

from typing import Any

from controlplane.queue import RECONCILE, REQUEUE_STALE, task
from controlplane.services import operations, reconcile


@task(REQUEUE_STALE)
def requeue_stale() -> int:
    return operations.requeue_stale()


@task(RECONCILE)
def reconcile_all() -> dict[str, Any]:
    """Compare the database with every host's inventory; fix what is safe."""
    return reconcile.reconcile(fix=True).as_dict()
