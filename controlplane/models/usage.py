"""Usage intervals: what each VM was charged for, and from when to when (usage accounting, not quotas)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.db import db
from controlplane.models.base import UTCDateTime


class UsageInterval(db.Model):  # type: ignore[name-defined]
    """A span of time in which a VM counted with one size: ``running`` counts vCPUs, RAM and disk; ``stopped``
    counts its disk only. ``ended_at`` is null while it lasts. Written by :mod:`controlplane.core.usage`."""

    __tablename__ = "usage_intervals"
    __table_args__ = (Index("ix_usage_tenant_span", "tenant_id", "started_at"),
                      Index("ix_usage_open", "vm_id", "ended_at"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    vm_id: Mapped[str] = mapped_column(ForeignKey("vms.id"), nullable=False)
    tenant_id: Mapped[str] = mapped_column(String(36), nullable=False)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)  # running | stopped
    vcpus: Mapped[int] = mapped_column(Integer, nullable=False)
    ram_mib: Mapped[int] = mapped_column(Integer, nullable=False)
    disk_gib: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
