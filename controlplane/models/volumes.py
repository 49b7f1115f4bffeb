"""Data volumes: disks a municipality creates, attaches to its VMs, grows, detaches and deletes.

A VM's root disk belongs to the VM (its ``disk_gib``, ``pool_id``); a volume is a disk of its own that
outlives the VM it is attached to. While not DELETED it claims ``size_gib`` on its municipality's disk quota
and on its (shared) pool."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.db import db
from controlplane.models.base import UTCDateTime, created_column, id_column, updated_column


class VolumeState(enum.StrEnum):
    AVAILABLE = "available"  # detached; its data is kept
    ATTACHING = "attaching"
    IN_USE = "in-use"  # attached to ``vm_id``
    DETACHING = "detaching"
    EXTENDING = "extending"
    DELETING = "deleting"
    DELETED = "deleted"
    ERROR = "error"


class Volume(db.Model):  # type: ignore[name-defined]
    __tablename__ = "volumes"
    __table_args__ = (
        CheckConstraint("size_gib > 0", name="ck_volumes_size_pos"),
        Index("ix_volumes_tenant_state", "tenant_id", "state"),
        Index("ix_volumes_vm", "vm_id"),
    )

    id: Mapped[str] = id_column()
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False, active_history=True)
    name: Mapped[str] = mapped_column(String(63), nullable=False)
    size_gib: Mapped[int] = mapped_column(Integer, nullable=False, active_history=True)
    previous_size_gib: Mapped[int | None] = mapped_column(Integer, nullable=True)  # while EXTENDING: to go back
    pool_id: Mapped[str] = mapped_column(ForeignKey("storage_pools.id"), nullable=False, active_history=True)
    vm_id: Mapped[str | None] = mapped_column(ForeignKey("vms.id"), nullable=True)
    # where its bytes are (the host that made or last used it); None: nothing exists on any host yet
    host_id: Mapped[str | None] = mapped_column(ForeignKey("hosts.id"), nullable=True)
    native_id: Mapped[str | None] = mapped_column(String(500), nullable=True)  # path / Proxmox volid
    device: Mapped[str | None] = mapped_column(String(16), nullable=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default=VolumeState.AVAILABLE.value,
                                       active_history=True)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __mapper_args__ = {"version_id_col": version}
