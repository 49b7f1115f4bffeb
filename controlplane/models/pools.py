"""Storage pools where disks live: ``local`` pools are each host's own disks (their capacity is the host's
``disk_gib``), ``shared`` pools are reachable from the hosts that list them (NFS, Ceph), with a capacity of
their own that every disk in them claims."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.db import db
from controlplane.models.base import created_column, id_column, updated_column


class PoolKind(enum.StrEnum):
    LOCAL = "local"
    SHARED = "shared"


class StoragePool(db.Model):  # type: ignore[name-defined]
    __tablename__ = "storage_pools"
    __table_args__ = (
        CheckConstraint("capacity_gib IS NULL OR capacity_gib >= 0", name="ck_storage_pools_capacity"),
    )

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)  # the name drivers map
    kind: Mapped[str] = mapped_column(String(8), nullable=False)  # a PoolKind
    capacity_gib: Mapped[int | None] = mapped_column(Integer, nullable=True)  # shared pools only
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)  # root disks go here
    # root disks here are full copies of their image instead of copy-on-write overlays (no backing chain)
    full_copy: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()

    __mapper_args__ = {"version_id_col": version}

    @property
    def shared(self) -> bool:
        return self.kind == PoolKind.SHARED


class PoolAllocation(db.Model):  # type: ignore[name-defined]
    """Running total of what the disks in a shared pool claim (kept like the host allocations)."""

    __tablename__ = "pool_allocations"

    pool_id: Mapped[str] = mapped_column(ForeignKey("storage_pools.id", ondelete="CASCADE"), primary_key=True)
    disk_gib: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
