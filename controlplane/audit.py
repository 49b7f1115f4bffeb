"""The audit log: append-only entries chained by hash (who did what, to what, before/after)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from controlplane import context
from controlplane.context import Principal
from controlplane.db import db
from controlplane.models import AuditEntry, AuditHead
from controlplane.models.base import utcnow

GENESIS = "0" * 64


def _canonical(entry: AuditEntry) -> str:
    payload = {
        "seq": entry.seq, "at": _iso(entry.at),
        "actor_id": entry.actor_id, "actor_name": entry.actor_name, "actor_role": entry.actor_role,
        "tenant_id": entry.tenant_id, "action": entry.action, "target_type": entry.target_type,
        "target_id": entry.target_id, "request_id": entry.request_id,
        "before": entry.before, "after": entry.after,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def _iso(at: datetime) -> str:
    """UTC without offset: SQLite returns naive datetimes, PostgreSQL aware ones; the hash must agree."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.isoformat()


def compute_hash(prev_hash: str, entry: AuditEntry) -> str:
    return hashlib.sha256((prev_hash + _canonical(entry)).encode()).hexdigest()


def record(
    actor: Principal,
    action: str,
    target_type: str,
    target_id: str | None,
    *,
    tenant_id: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an entry in the current transaction. Call it last: it locks the chain head until commit."""
    head = db.session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
    entry = AuditEntry(
        seq=head.last_seq + 1, at=utcnow().replace(microsecond=0), actor_id=actor.user_id,
        actor_name=actor.username, actor_role=actor.role, tenant_id=tenant_id, action=action,
        target_type=target_type, target_id=target_id, request_id=context.request_id.get(),
        before=_jsonable(before), after=_jsonable(after), prev_hash=head.last_hash,
    )
    entry.entry_hash = compute_hash(head.last_hash, entry)
    head.last_hash = entry.entry_hash
    head.last_seq = entry.seq
    db.session.add(entry)
    return entry


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
