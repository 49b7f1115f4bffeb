"""The operation lease: which delivery of a task works on an operation, and until when.

A worker loads the operation and its VM under row locks (:func:`load_op`), takes the lease
(:func:`start_op`), does the hypervisor I/O outside any transaction, and settles the operation
(:func:`finish_op`). Leases are short (``CONFLUENCIA_LEASE_S``, default 60 s) and renewed by a heartbeat
thread (:func:`heartbeat`) while the worker lives, so only a dead worker's lease expires. A duplicate
delivery finds the lease held and waits (:class:`Busy`); a task that will be retried gives its lease back
first (:func:`give_back`); so a delivery that finds the operation RUNNING under an expired lease knows the
previous worker died in the middle (:func:`start_op` says so: a migration is then resolved by asking both
hypervisors instead of being repeated). A finished operation raises :class:`Finished`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, timedelta

from flask import current_app
from sqlalchemy import select, update

from controlplane import context
from controlplane.config import settings
from controlplane.context import SYSTEM
from controlplane.core.audit import audited
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.models import VM, Operation, OpStatus
from controlplane.models.base import utcnow
from controlplane.telemetry import OPERATION_SECONDS

log = logging.getLogger("confluencia.leases")


class Finished(Exception):
    """The operation is already over (redelivery of a finished task, or cancelled)."""


class Busy(Exception):
    """Another delivery of the same operation holds its lease; try again in ``retry_in`` seconds."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(f"operation busy, retry in {retry_in:.0f}s")
        self.retry_in = retry_in


def load_operation(op_id: str) -> Operation:
    """The unfinished operation, row-locked for this transaction (:class:`Finished` when it is over)."""
    op = db.session.execute(select(Operation).where(Operation.id == op_id).with_for_update()).scalar_one()
    if op.status in (OpStatus.SUCCEEDED, OpStatus.FAILED):
        raise Finished(op.status)
    return op


def load_op(op_id: str) -> tuple[Operation, VM]:
    """The unfinished operation and its VM, both row-locked for this transaction."""
    op = load_operation(op_id)
    vm = db.session.execute(select(VM).where(VM.id == op.target_id).with_for_update(of=VM)).scalar_one()
    return op, vm


def start_op(op: Operation) -> bool:
    """Take the operation's lease for this delivery, or raise :class:`Busy` while another one holds it.

    Returns True when this delivery takes over from a worker that died while running it (the operation
    was RUNNING and its lease had expired)."""
    me, now = context.worker_id.get() or "inline", utcnow()
    expires = op.lease_expires_at
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    if op.worker_id not in (None, me) and expires is not None and expires > now:
        raise Busy(min((expires - now).total_seconds(), 10.0))
    took_over = op.status == OpStatus.RUNNING and expires is not None and expires <= now
    op.worker_id, op.lease_expires_at = me, now + timedelta(seconds=settings().lease_s)
    op.status = OpStatus.RUNNING.value
    op.attempts += 1
    op.started_at = op.started_at or utcnow()
    return took_over


def release(op: Operation) -> None:
    """Give the operation back: the next delivery (retry, new host, restarted worker) may take it."""
    op.status = OpStatus.PENDING.value
    op.worker_id = op.lease_expires_at = None


def give_back(op_id: str) -> None:
    """A task that will be retried lets go of its lease: the retry starts afresh, and a RUNNING operation
    under an expired lease can only mean a worker that died."""
    me = context.worker_id.get() or "inline"
    with transaction():
        db.session.execute(update(Operation).where(
            Operation.id == op_id, Operation.worker_id == me, Operation.status == OpStatus.RUNNING.value)
            .values(status=OpStatus.PENDING.value, worker_id=None, lease_expires_at=None))


def renew(op_id: str, worker_id: str, lease_s: float) -> bool:
    """Extend this worker's lease; False when the operation is no longer this worker's."""
    with transaction():
        result = db.session.execute(update(Operation).where(
            Operation.id == op_id, Operation.worker_id == worker_id, Operation.status == OpStatus.RUNNING.value)
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s)))
    return bool(getattr(result, "rowcount", 0))


@contextmanager
def heartbeat(op_id: str) -> Iterator[None]:
    """Renew the lease of ``op_id`` every third of a lease while the block runs (a thread of its own, in
    its own database session), so a worker that lives keeps its operation however long the hypervisor takes."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # the real app, for the thread
    me, lease_s = context.worker_id.get() or "inline", settings().lease_s
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(lease_s / 3):
            try:
                with app.app_context():
                    if not renew(op_id, me, lease_s):
                        return
            except Exception:  # the database is away for a moment: try again at the next beat
                log.warning("could not renew the lease of operation %s", op_id, exc_info=True)

    thread = threading.Thread(target=beat, name=f"lease-{op_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def finish_op(op: Operation, ok: bool, error: str | None = None) -> None:
    op.lease_expires_at = None
    op.status = (OpStatus.SUCCEEDED if ok else OpStatus.FAILED).value
    op.progress = 100 if ok else op.progress
    op.error = error
    op.finished_at = utcnow()
    if op.created_at is not None:
        OPERATION_SECONDS.labels(op.kind, op.status).observe((op.finished_at - op.created_at).total_seconds())


def set_progress(op_id: str, pct: int) -> None:
    with transaction():
        op = db.session.get(Operation, op_id)
        if op is not None and op.status == OpStatus.RUNNING:
            op.progress = max(op.progress, pct)


def fail_op(op_id: str, action: str, reason: str, also: Callable[[VM], None] | None = None) -> None:
    """Settle an unfinished operation as failed (audit entry ``action``, ``also`` applied to its VM in the
    same transaction); nothing happens when the operation is already over."""
    with transaction():
        try:
            op, vm = load_op(op_id)
        except Finished:
            return
        with audited(SYSTEM, action, vm, operation=op, error=reason):
            finish_op(op, False, reason)
            if also is not None:
                also(vm)


def fail_unexpected(op_id: str, exc: BaseException) -> None:
    """Mark the operation failed after an error no step handled (the VM keeps its state for reconcile)."""
    log.error("operation %s failed unexpectedly", op_id, exc_info=exc)
    try:
        with transaction():
            op = db.session.get(Operation, op_id)
            if op is not None and op.status in (OpStatus.PENDING, OpStatus.RUNNING):
                finish_op(op, False, f"internal error: {type(exc).__name__}")
    except Exception:  # the database itself is gone: the stale-operation sweep will resend it
        log.exception("could not record the failure of operation %s", op_id)


def request_id_of(op_id: str) -> str | None:
    """The request id of the HTTP request that started the operation (for the worker's log and audit)."""
    op = db.session.get(Operation, op_id)
    rid = op.request_id if op is not None else None
    db.session.rollback()
    return rid
