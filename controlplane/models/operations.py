"""Asynchronous operations: the durable record behind every 202, and the outbox the workers read."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.db import db
from controlplane.models.base import UTCDateTime, created_column, id_column, updated_column


class OpStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


UNFINISHED = (OpStatus.PENDING.value, OpStatus.RUNNING.value)


class OpKind(enum.StrEnum):
    """What an operation does. A VM operation's worker task is named ``confluencia.<kind>``
    (:func:`controlplane.queue.task_for`); a plan's execution is driven by ``confluencia.plans.advance``."""

    VM_CREATE = "vm.create"
    VM_DELETE = "vm.delete"
    VM_START = "vm.start"
    VM_STOP = "vm.stop"
    VM_MIGRATE = "vm.migrate"
    VM_RESIZE = "vm.resize"
    VM_EVACUATE = "vm.evacuate"  # restart on another host after its host was fenced (high availability)
    HOST_FIREWALL = "host.firewall"  # apply the security groups of every VM of a host again (rules changed)
    IMAGE_IMPORT = "image.import"
    VOLUME_ATTACH = "volume.attach"
    VOLUME_DETACH = "volume.detach"
    VOLUME_EXTEND = "volume.extend"
    VOLUME_DELETE = "volume.delete"
    PLAN_EXECUTE = "plan.execute"


class Operation(db.Model):  # type: ignore[name-defined]
    __tablename__ = "operations"
    __table_args__ = (Index("ix_operations_tenant_created", "tenant_id", "created_at"),
                      Index("ix_operations_status", "status"))

    id: Mapped[str] = id_column()
    kind: Mapped[str] = mapped_column(String(40), nullable=False)  # an OpKind
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    target_type: Mapped[str] = mapped_column(String(20), nullable=False)
    target_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=OpStatus.PENDING.value)
    progress: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    params: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)  # what was asked (e.g. resize)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # the delivery (Celery task id) working on it, and until when: a duplicate delivery waits instead of
    # building the same VM twice; a redelivery after a worker died (same task id) takes over at once
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # when its task was last handed to the broker: the sweep re-sends a pending one at most once a lease
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
