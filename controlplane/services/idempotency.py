"""Idempotency-Key records: the same key and body replays the stored response; another body is refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from controlplane.db import db
from controlplane.errors import Msg, ProblemError
from controlplane.models import IdempotencyRecord
from controlplane.models.base import utcnow

IN_PROGRESS_TIMEOUT = timedelta(seconds=120)
RETENTION = timedelta(hours=24)


@dataclass(frozen=True)
class Replay:
    status: int
    body: Any
    headers: dict[str, str]


def begin(principal_id: str, key: str, method: str, path: str, body_hash: str) -> str | Replay:
    """Claim ``key`` for this request (returns the record id) or return the stored response."""
    for _ in range(3):
        rec = db.session.execute(select(IdempotencyRecord).where(
            IdempotencyRecord.principal_id == principal_id, IdempotencyRecord.key == key)).scalar_one_or_none()
        now = utcnow()
        if rec is not None:
            created = rec.created_at if rec.created_at.tzinfo else rec.created_at.replace(tzinfo=now.tzinfo)
            if created < now - RETENTION:
                db.session.delete(rec)
                db.session.commit()
                continue
            if rec.body_hash != body_hash or rec.method != method or rec.path != path:
                db.session.rollback()
                raise ProblemError(Msg(
                    "This Idempotency-Key was already used with a different request; use a new key.",
                    "Esta Idempotency-Key ya se usó con otra solicitud; use una clave nueva."),
                    slug="idempotency-key-reused")
            if rec.status_code is not None:
                replay = Replay(rec.status_code, rec.response_body, dict(rec.response_headers or {}))
                db.session.rollback()
                return replay
            updated = rec.updated_at if rec.updated_at.tzinfo else rec.updated_at.replace(tzinfo=now.tzinfo)
            if updated > now - IN_PROGRESS_TIMEOUT:
                db.session.rollback()
                raise ProblemError(Msg("A request with this Idempotency-Key is still being processed; retry later.",
                                       "Una solicitud con esta Idempotency-Key todavía se está procesando; "
                                       "reintente más tarde."), slug="idempotency-in-progress")
            db.session.delete(rec)  # abandoned by a crashed request
            db.session.commit()
            continue
        rec = IdempotencyRecord(principal_id=principal_id, key=key, method=method, path=path, body_hash=body_hash)
        db.session.add(rec)
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()  # a concurrent request took the key first: look again
            continue
        return rec.id
    raise ProblemError(Msg("Could not reserve the Idempotency-Key; retry.",
                           "No se pudo reservar la Idempotency-Key; reintente."), slug="idempotency-in-progress")


def complete(record_id: str, status: int, body: Any, headers: dict[str, str]) -> None:
    db.session.rollback()
    rec = db.session.get(IdempotencyRecord, record_id)
    if rec is not None:
        rec.status_code = status
        rec.response_body = body
        rec.response_headers = headers
        db.session.commit()


def abandon(record_id: str) -> None:
    """The request failed: forget the key so the client may retry with it."""
    db.session.rollback()
    db.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))
    db.session.commit()
