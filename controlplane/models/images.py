"""Disk images VMs boot from: public ones imported by operators, private ones of a municipality."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.db import db
from controlplane.models.base import UTCDateTime, created_column, id_column, updated_column


class ImageState(enum.StrEnum):
    IMPORTING = "importing"  # the worker fetches, checks and stores the file
    ACTIVE = "active"  # VMs can boot from it
    ERROR = "error"  # the import failed (status_reason says why); only deletion is left
    DELETED = "deleted"


class Image(db.Model):  # type: ignore[name-defined]
    """``tenant_id`` None: public (every municipality sees it); else private to that municipality.

    ``checksum`` is what the importer declared (``sha256:<hex>``) and the stored file has; ``format`` and
    ``virtual_size_bytes`` are read from the file by ``qemu-img info`` at import."""

    __tablename__ = "images"
    __table_args__ = (
        CheckConstraint("min_disk_gib >= 0 AND min_ram_mib >= 0", name="ck_images_minimums"),
        Index("ix_images_tenant_state", "tenant_id", "state"),
    )

    id: Mapped[str] = id_column()
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    name: Mapped[str] = mapped_column(String(63), nullable=False)
    os_name: Mapped[str | None] = mapped_column(String(63), nullable=True)
    os_version: Mapped[str | None] = mapped_column(String(63), nullable=True)
    source: Mapped[str] = mapped_column(Text, nullable=False)  # URL or path it was imported from
    format: Mapped[str | None] = mapped_column(String(8), nullable=True)  # qcow2 | raw
    checksum: Mapped[str] = mapped_column(String(80), nullable=False)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    virtual_size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    min_disk_gib: Mapped[int] = mapped_column(Integer, nullable=False)
    min_ram_mib: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default=ImageState.IMPORTING.value)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __mapper_args__ = {"version_id_col": version}

    @property
    def visibility(self) -> str:
        return "public" if self.tenant_id is None else "private"
