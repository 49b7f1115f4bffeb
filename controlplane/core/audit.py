"""The audit log: append-only entries chained by hash (who did what, to what, before/after).

Use cases record through :func:`audited`, which snapshots the object's view (:mod:`controlplane.core.views`)
before and after the change, so every entry of a kind of object carries the same fields::

    with audited(actor, "vm.delete", vm, operation=op):
        transition(vm, VMState.DELETING)

``before`` is None for a creation; ``after`` is None for a removal, and also when the entry changed nothing
yet (a request whose work a worker does: its outcome is a second entry, ``vm.start.succeeded``, that names
the same operation). Entries made by workers carry the request id of the HTTP request that started the
operation (or the Celery task id for periodic work), so one id follows a request to its outcome.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from controlplane import context
from controlplane.context import Principal
from controlplane.core.views import tenant_of, view_of
from controlplane.db import db
from controlplane.models import AuditEntry, AuditHead, Operation
from controlplane.models.base import utcnow

GENESIS = "0" * 64


def canonical(entry: AuditEntry) -> str:
    """The hashed form of an entry: sorted-key compact JSON of these fields (``operation_id`` only when set,
    so entries written before it existed keep their hash)."""
    payload = {
        "seq": entry.seq, "at": _iso(entry.at),
        "actor_id": entry.actor_id, "actor_name": entry.actor_name, "actor_role": entry.actor_role,
        "tenant_id": entry.tenant_id, "action": entry.action, "target_type": entry.target_type,
        "target_id": entry.target_id, "request_id": entry.request_id,
        "before": entry.before, "after": entry.after,
    }
    if entry.operation_id is not None:
        payload["operation_id"] = entry.operation_id
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def _iso(at: datetime) -> str:
    """UTC without offset: SQLite returns naive datetimes, PostgreSQL aware ones; the hash must agree."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.isoformat()


def compute_hash(prev_hash: str, entry: AuditEntry) -> str:
    return hashlib.sha256((prev_hash + canonical(entry)).encode()).hexdigest()


def record(
    actor: Principal,
    action: str,
    target_type: str,
    target_id: str | None,
    *,
    tenant_id: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    operation_id: str | None = None,
) -> AuditEntry:
    """Append an entry in the current transaction. Call it last: it locks the chain head until commit.

    For an entry about a model object use :func:`audited`; this is for entries without one (a domain
    that reconcile removed, for example)."""
    head = db.session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
    entry = AuditEntry(
        seq=head.last_seq + 1, at=utcnow().replace(microsecond=0), actor_id=actor.user_id,
        actor_name=actor.username, actor_role=actor.role, tenant_id=tenant_id, action=action,
        target_type=target_type, target_id=target_id, request_id=context.request_id.get(),
        operation_id=operation_id or context.operation_id.get(),
        before=_jsonable(before), after=_jsonable(after), prev_hash=head.last_hash,
    )
    entry.entry_hash = compute_hash(head.last_hash, entry)
    head.last_hash = entry.entry_hash
    head.last_seq = entry.seq
    db.session.add(entry)
    return entry


@dataclass
class Change:
    """What :func:`audited` yields: add ``extra`` members to the entry's ``after``, mark the object
    ``removed`` (no ``after``), or name the ``action`` by the outcome (e.g. a build that failed)."""

    action: str
    extra: dict[str, Any] = field(default_factory=dict)
    removed: bool = False


@contextmanager
def audited(actor: Principal, action: str, obj: object, *, created: bool = False,
            operation: Operation | None = None, **extra: Any) -> Iterator[Change]:
    """Record ``action`` on ``obj`` when the block succeeds, with its view before and after the block."""
    target_type, before = view_of(obj)
    change = Change(action=action, extra=dict(extra))
    yield change
    if created:
        db.session.flush()  # the object's id and defaults
    _, now = view_of(obj)
    after: dict[str, Any] | None = None if change.removed else now | change.extra
    before_out = None if created else before
    if after is not None and before_out is not None and _jsonable(after) == _jsonable(before_out):
        after = None  # nothing changed (yet): the outcome is recorded by the worker
    record(actor, change.action, target_type, getattr(obj, "id", None), tenant_id=tenant_of(obj), before=before_out,
           after=after, operation_id=operation.id if operation is not None else None)


def created(actor: Principal, action: str, obj: object, *, operation: Operation | None = None,
            **extra: Any) -> None:
    """Record the creation of ``obj`` (flushed first, so it has its id and defaults)."""
    with audited(actor, action, obj, created=True, operation=operation, **extra):
        pass


def _jsonable(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None:
        return None
    return json.loads(json.dumps(data, default=str))


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    first_bad_seq: int | None = None


def verify_chain() -> ChainReport:
    """Recompute every hash from the first entry: any edited, removed or reordered entry breaks it."""
    prev = GENESIS
    count = 0
    expected_seq = 1
    for entry in db.session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars():
        count += 1
        if entry.seq != expected_seq or entry.prev_hash != prev or compute_hash(prev, entry) != entry.entry_hash:
            return ChainReport(ok=False, entries=count, first_bad_seq=entry.seq)
        prev = entry.entry_hash
        expected_seq += 1
    head = db.session.get(AuditHead, 1)
    if head is not None and head.last_hash != prev:
        return ChainReport(ok=False, entries=count, first_bad_seq=expected_seq)
    return ChainReport(ok=True, entries=count)
