"""The audit log: append-only entries chained by hash (who did what, to what, before/after).

Use cases record through :func:`audited`, which snapshots the object's view (:mod:`controlplane.core.views`)
before and after the change, so every entry of a kind of object carries the same fields::

    with audited(actor, "vm.delete", vm, operation=op):
        transition(vm, VMState.DELETING)

``before`` is None for a creation; ``after`` is None for a removal, and also when the entry changed nothing
yet (a request whose work a worker does: its outcome is a second entry, ``vm.start.succeeded``, that names
the same operation). Entries made by workers carry the request id of the HTTP request that started the
operation (or the Celery task id for periodic work), so one id follows a request to its outcome.

Tamper evidence is off the request path: an entry is written with its sequence number only; the sealer
(:func:`seal`, the task ``confluencia.audit.seal``, nudged after each commit and run every two seconds)
takes the committed entries in sequence order and makes each the next leaf of an RFC 9162 Merkle tree
(``chain_seq`` = leaf index + 1), numbers it among its municipality's entries (``tenant_seq``) and stores its
leaf hash (``entry_hash``) over the hashed form of :mod:`controlplane.transparency.entries`. Only the sealer
locks the log's head. Signed tree heads, proofs and exports: :mod:`controlplane.core.audit_tree`.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select

from controlplane import context, queue
from controlplane.context import Principal
from controlplane.core.tx import after_commit, transaction
from controlplane.core.views import tenant_of, view_of
from controlplane.db import db
from controlplane.models import AuditEntry, AuditHead, Operation
from controlplane.models.base import utcnow
from controlplane.transparency.entries import FORM_VERSION, entry_leaf_hash


def hashed_form(entry: AuditEntry) -> dict[str, Any]:
    """The entry as its leaf hashes it (and as an export shows it): see :mod:`controlplane.transparency.entries`."""
    return {
        "v": FORM_VERSION, "tenant_seq": entry.tenant_seq, "salt": entry.salt, "at": _iso(entry.at),
        "actor_id": entry.actor_id, "actor_name": entry.actor_name, "actor_role": entry.actor_role,
        "tenant_id": entry.tenant_id, "action": entry.action, "target_type": entry.target_type,
        "target_id": entry.target_id, "request_id": entry.request_id, "operation_id": entry.operation_id,
        "before": entry.before, "after": entry.after,
    }


def _iso(at: datetime) -> str:
    """UTC with ``Z``, whole seconds: SQLite returns naive datetimes, PostgreSQL aware ones; the hash must agree."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.replace(microsecond=0).isoformat() + "Z"


def leaf_hash_of(entry: AuditEntry) -> str:
    return entry_leaf_hash(hashed_form(entry)).hex()


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
) -> None:
    """Append an entry in the current transaction (sealed into the chain after commit).

    For an entry about a model object use :func:`audited`; this is for entries without one (a domain
    that reconcile removed, for example). A plain INSERT on the connection, not an ORM object:
    it is on every request's path."""
    db.session.connection().execute(_INSERT_ENTRY, {
        "at": utcnow().replace(microsecond=0), "actor_id": actor.user_id, "actor_name": actor.username,
        "actor_role": actor.role, "tenant_id": tenant_id, "action": action, "target_type": target_type,
        "target_id": target_id, "request_id": context.request_id.get(),
        "operation_id": operation_id or context.operation_id.get(), "before": _jsonable(before),
        "after": _jsonable(after), "salt": secrets.token_hex(16)})
    after_commit(_nudge_sealer)


_INSERT_ENTRY = insert(AuditEntry.__table__)  # built once; Core, so no ORM flush is forced here


_last_nudge = [0.0]
_nudge_lock = threading.Lock()
NUDGE_EVERY_S = 0.5


def _nudge_sealer() -> None:
    """Ask for a seal soon after a commit that wrote entries (at most twice a second per process)."""
    now = time.monotonic()
    with _nudge_lock:
        if now - _last_nudge[0] < NUDGE_EVERY_S:
            return
        _last_nudge[0] = now
    queue.send(queue.AUDIT_SEAL, [])


def seal(limit: int = 5000) -> int:
    """Make the committed entries that are not sealed yet the next leaves, in sequence order; returns how many."""
    with transaction():
        head = db.session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
        pending = list(db.session.execute(select(AuditEntry).where(AuditEntry.chain_seq.is_(None))
                                          .order_by(AuditEntry.seq).limit(limit)).scalars())
        numbers: dict[str | None, int] = {}
        for entry in pending:
            if entry.tenant_id not in numbers:
                numbers[entry.tenant_id] = int(db.session.execute(  # type: ignore[arg-type]
                    select(func.coalesce(func.max(AuditEntry.tenant_seq), 0))
                    .where(AuditEntry.tenant_id.is_(None) if entry.tenant_id is None
                           else AuditEntry.tenant_id == entry.tenant_id)).scalar_one())
            numbers[entry.tenant_id] += 1
            entry.chain_seq, entry.tenant_seq = head.last_seq + 1, numbers[entry.tenant_id]
            entry.salt = entry.salt or secrets.token_hex(16)
            entry.entry_hash = leaf_hash_of(entry)
            head.last_hash, head.last_seq = entry.entry_hash, entry.chain_seq
        return len(pending)


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
    if created and getattr(obj, "id", None) is None:
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


def _plain(value: Any) -> str:
    """Timestamps as ISO 8601 with their zone (the form the API uses), anything else as text."""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _jsonable(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None:
        return None
    return json.loads(json.dumps(data, default=_plain))


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    pending: int = 0  # written, not sealed yet (verification seals first, so this is what came meanwhile)


def verify_chain(seal_first: bool = True) -> ChainReport:
    """Recompute every leaf hash in leaf order and check the numbering: any edited, removed or reordered entry
    shows. ``first_bad_seq`` is the sequence number of the first entry that does not verify. With ``seal_first``
    the committed entries not sealed yet are sealed before verifying (nothing is left outside the check).
    The signed heads are checked against the recomputed leaves by :func:`controlplane.core.audit_tree.verify_heads`."""
    if seal_first:
        while seal() > 0:
            pass
    count = 0
    numbers: dict[str | None, int] = {}
    last_hash = ""
    for entry in db.session.execute(select(AuditEntry).where(AuditEntry.chain_seq.is_not(None))
                                    .order_by(AuditEntry.chain_seq)).scalars():
        count += 1
        numbers[entry.tenant_id] = numbers.get(entry.tenant_id, 0) + 1
        if entry.chain_seq != count or entry.tenant_seq != numbers[entry.tenant_id] \
                or leaf_hash_of(entry) != entry.entry_hash:
            return ChainReport(ok=False, entries=count, first_bad_seq=entry.seq)
        last_hash = entry.entry_hash
    head = db.session.get(AuditHead, 1)
    pending = int(db.session.execute(select(func.count()).select_from(AuditEntry)
                                     .where(AuditEntry.chain_seq.is_(None))).scalar_one())
    if head is not None and (head.last_seq != count or (count and head.last_hash != last_hash)):
        return ChainReport(ok=False, entries=count, first_bad_seq=None, pending=pending)
    return ChainReport(ok=True, entries=count, pending=pending)
