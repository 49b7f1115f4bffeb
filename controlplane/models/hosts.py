"""Physical hypervisor hosts: capacity, reservations, allocation ratios and state."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.db import db
from controlplane.models.base import created_column, id_column, updated_column


class HostState(enum.StrEnum):
    PENDING = "pending"  # registered, waiting for its first health check to pass
    ENABLED = "enabled"
    MAINTENANCE = "maintenance"
    DISABLED = "disabled"
    DOWN = "down"


class Host(db.Model):  # type: ignore[name-defined]
    __tablename__ = "hosts"
    __table_args__ = (
        CheckConstraint("vcpus > 0 AND ram_mib > 0 AND disk_gib > 0", name="ck_hosts_physical_pos"),
        CheckConstraint("reserved_vcpus >= 0 AND reserved_ram_mib >= 0 AND reserved_disk_gib >= 0",
                        name="ck_hosts_reserved_nonneg"),
        CheckConstraint("cpu_ratio > 0 AND ram_ratio > 0 AND disk_ratio > 0", name="ck_hosts_ratio_pos"),
    )

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    driver: Mapped[str] = mapped_column(String(16), nullable=False)  # simulated | libvirt | proxmox
    uri: Mapped[str] = mapped_column(String(500), nullable=False)
    # driver options such as the Proxmox API token; never returned by the API. Secret values are stored
    # encrypted ("enc:fernet:..."): controlplane.core.secrets seals them, core.drivers opens them
    driver_options: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    vcpus: Mapped[int] = mapped_column(Integer, nullable=False)
    ram_mib: Mapped[int] = mapped_column(Integer, nullable=False)
    disk_gib: Mapped[int] = mapped_column(Integer, nullable=False)
    reserved_vcpus: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    reserved_ram_mib: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    reserved_disk_gib: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cpu_ratio: Mapped[float] = mapped_column(Float, nullable=False, default=4.0)
    ram_ratio: Mapped[float] = mapped_column(Float, nullable=False, default=1.0)
    disk_ratio: Mapped[float] = mapped_column(Float, nullable=False, default=1.0)
    zone: Mapped[str | None] = mapped_column(String(63), nullable=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default=HostState.ENABLED.value)
    state_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    exclude_from_rebalance: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # names of the shared storage pools this host reaches (every host has the local pools)
    storage_pools: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # names of the physical networks this host is attached to (its uplinks / bridge families)
    physnets: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # the hosts that can exchange VMs with this one (controlplane.core.domains); None: its driver's default
    migration_domain: Mapped[str | None] = mapped_column(String(63), nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()

    __mapper_args__ = {"version_id_col": version}

    @property
    def pool_names(self) -> list[str]:
        return list(self.storage_pools or [])

    @property
    def physnet_names(self) -> list[str]:
        return list(self.physnets or [])

    def capacity(self) -> tuple[float, float, float]:
        """Schedulable capacity per resource: (physical - reserved) * allocation ratio."""
        return (
            max(self.vcpus - self.reserved_vcpus, 0) * self.cpu_ratio,
            max(self.ram_mib - self.reserved_ram_mib, 0) * self.ram_ratio,
            max(self.disk_gib - self.reserved_disk_gib, 0) * self.disk_ratio,
        )
