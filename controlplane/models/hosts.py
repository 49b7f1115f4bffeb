"""Physical hypervisor hosts: capacity, reservations, allocation ratios and state."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Float, ForeignKey, Integer, String, Text, event
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.db import db
from controlplane.models.base import UTCDateTime, created_column, id_column, updated_column, utcnow


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
    # high availability (controlplane.services.ha): when the state last changed, the out-of-band command that
    # powers the host off (argv, e.g. ipmitool ... chassis power off), and when it was fenced (its VMs then
    # restarted elsewhere; it rejoins empty)
    state_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    fence_command: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    fenced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the SSH host agent (controlplane.services.host_agent): "user@address[:port]", None = no agent
    agent_ssh: Mapped[str | None] = mapped_column(String(300), nullable=True)
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


@event.listens_for(Host.state, "set")
def _state_changed(host: Host, value: str, old: object, _initiator: object) -> None:
    """Every change of state is dated (the HA grace period counts from the moment a host went down)."""
    if value != old:
        host.state_since = utcnow()


class HostAgentState(db.Model):  # type: ignore[name-defined]
    """What the SSH host agent last found on a host (its own row: measuring load every minute must not bump
    the host's version, which operators' If-Match updates compare)."""

    __tablename__ = "host_agent_state"

    host_id: Mapped[str] = mapped_column(String(36), ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)
    agent_error: Mapped[str | None] = mapped_column(Text, nullable=True)  # why the last gathering failed
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # CPU, memory, disks, NICs, versions
    facts_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    facts_mismatch: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)  # vs registration
    # measured load: exponentially weighted means of the samples (fractions of the host) and the last sample
    load_cpu: Mapped[float | None] = mapped_column(Float, nullable=True)
    load_mem: Mapped[float | None] = mapped_column(Float, nullable=True)
    load_sample: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    load_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
