"""The audit log's rows: append-only entries (the leaves of a Merkle tree), the sealer's head, signed tree heads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.db import db
from controlplane.models.base import created_column


class AuditEntry(db.Model):  # type: ignore[name-defined]
    """Append-only. Entries are written without their place in the log; the sealer gives each, moments later,
    its leaf (``chain_seq`` = leaf index + 1), its number among its municipality's entries (``tenant_seq``) and
    ``entry_hash``, the RFC 9162 leaf hash of its hashed form (:mod:`controlplane.transparency.entries`), so no
    request waits for the log's head (see :mod:`controlplane.core.audit`)."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_tenant_seq", "tenant_id", "seq"),
                      Index("ix_audit_tenant_number", "tenant_id", "tenant_seq", unique=True))

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                     autoincrement=True)
    at: Mapped[datetime] = created_column()
    actor_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    actor_name: Mapped[str] = mapped_column(String(100), nullable=False)
    actor_role: Mapped[str] = mapped_column(String(16), nullable=False)
    tenant_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    action: Mapped[str] = mapped_column(String(60), nullable=False)
    target_type: Mapped[str] = mapped_column(String(20), nullable=False)
    target_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # the asynchronous operation the entry belongs to (request and outcome share it)
    operation_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    chain_seq: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), nullable=True,
                                                  unique=True)
    tenant_seq: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), nullable=True)
    salt: Mapped[str | None] = mapped_column(String(32), nullable=True)
    entry_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)


class AuditHead(db.Model):  # type: ignore[name-defined]
    """One row: the newest sealed entry's place and leaf hash. Locked while sealing, so leaves never collide."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    last_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), nullable=False)


class AuditTreeHead(db.Model):  # type: ignore[name-defined]
    """A signed tree head: the root of the first ``tree_size`` leaves, signed with the log's Ed25519 key.
    ``statement`` is the signed JSON as it was given out (:mod:`controlplane.transparency.heads`)."""

    __tablename__ = "audit_tree_heads"

    tree_size: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                           autoincrement=False)
    root_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    signed_at: Mapped[datetime] = created_column()
    statement: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
