"""Virtual machines: what a tenant owns and where it runs."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from controlplane.db import db
from controlplane.models.base import UTCDateTime, created_column, id_column, updated_column
from controlplane.models.hosts import Host
from controlplane.models.networks import Port
from controlplane.models.tenants import Tenant


class VMState(enum.StrEnum):
    PENDING = "PENDING"
    BUILDING = "BUILDING"
    ACTIVE = "ACTIVE"
    STOPPED = "STOPPED"
    MIGRATING = "MIGRATING"
    DELETING = "DELETING"
    DELETED = "DELETED"
    ERROR = "ERROR"


class VM(db.Model):  # type: ignore[name-defined]
    """A VM claims resources on ``host_id`` (and ``migration_target_id`` while migrating) whenever
    ``host_id`` is set and the state is not DELETED; a failed build clears ``host_id``. The claim columns
    keep their old value on change (``active_history``): the running totals follow from them."""

    __tablename__ = "vms"
    __table_args__ = (
        CheckConstraint("vcpus > 0 AND ram_mib > 0 AND disk_gib >= 0", name="ck_vms_pos"),
        CheckConstraint("host_disk_gib >= 0 AND host_disk_gib <= disk_gib", name="ck_vms_host_disk"),
        Index("ix_vms_tenant_state", "tenant_id", "state"),
        Index("ix_vms_host_state", "host_id", "state"),
    )

    id: Mapped[str] = id_column()
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False, active_history=True)
    name: Mapped[str] = mapped_column(String(63), nullable=False)
    flavor_id: Mapped[str | None] = mapped_column(ForeignKey("flavors.id"), nullable=True)
    vcpus: Mapped[int] = mapped_column(Integer, nullable=False, active_history=True)
    ram_mib: Mapped[int] = mapped_column(Integer, nullable=False, active_history=True)
    disk_gib: Mapped[int] = mapped_column(Integer, nullable=False, active_history=True)
    image: Mapped[str | None] = mapped_column(String(200), nullable=True)  # a Proxmox template reference
    image_id: Mapped[str | None] = mapped_column(ForeignKey("images.id"), nullable=True)  # root disk made from it
    pool_id: Mapped[str | None] = mapped_column(ForeignKey("storage_pools.id"), nullable=True,
                                                active_history=True)  # where the root disk lives
    # disk claimed on the host: disk_gib for a root disk in a local pool (and for diskless VMs), 0 in a shared
    # pool, whose capacity the rest (disk_gib - host_disk_gib) claims instead
    host_disk_gib: Mapped[int] = mapped_column(Integer, nullable=False, active_history=True,
                                               default=lambda ctx: ctx.get_current_parameters()["disk_gib"])
    hostname: Mapped[str | None] = mapped_column(String(63), nullable=True)
    ssh_keys: Mapped[str | None] = mapped_column(Text, nullable=True)  # OpenSSH public keys, one per line
    key_name: Mapped[str | None] = mapped_column(String(63), nullable=True)  # the keypair they came from
    user_data: Mapped[str | None] = mapped_column(Text, nullable=True)
    network: Mapped[dict[str, object] | None] = mapped_column(JSON, nullable=True)  # address, gateway, dns
    anti_affinity_group: Mapped[str | None] = mapped_column(String(63), nullable=True)
    pinned: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)  # never moved by plans
    # high availability: restarted on another host when its host is fenced (controlplane.services.ha)
    ha_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    ha_priority: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # higher restarts first
    host_id: Mapped[str | None] = mapped_column(ForeignKey("hosts.id"), nullable=True, active_history=True)
    migration_target_id: Mapped[str | None] = mapped_column(ForeignKey("hosts.id"), nullable=True,
                                                            active_history=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default=VMState.PENDING.value,
                                       active_history=True)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    failed_hosts: Mapped[str] = mapped_column(Text, nullable=False, default="")  # comma-separated host ids
    build_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()
    launched_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __mapper_args__ = {"version_id_col": version}

    tenant: Mapped[Tenant] = relationship()
    host: Mapped[Host | None] = relationship(foreign_keys=[host_id])
    ports: Mapped[list[Port]] = relationship(order_by=Port.device_index, viewonly=True)  # its NICs

    @property
    def root_disk(self) -> str | None:
        """The id of its root disk (made from its image), or None for a diskless VM."""
        return f"{self.id}-root" if self.image_id else None

    @property
    def pool_disk_gib(self) -> int:
        """What the root disk claims on its shared pool."""
        return self.disk_gib - self.host_disk_gib if self.pool_id else 0

    @property
    def failed_host_ids(self) -> set[str]:
        return {h for h in self.failed_hosts.split(",") if h}
