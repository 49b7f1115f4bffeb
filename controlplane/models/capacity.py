"""Running totals of what is claimed: per host (allocation) and per municipality (quota use).

They are kept by :mod:`controlplane.core.capacity` in the same transaction as every change of a VM that
claims resources (an ORM flush hook), so a claim reads one row instead of summing every VM; the totals
can always be recounted from the VMs themselves (``reconcile`` compares them and repairs a drift).
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.db import db


class HostAllocation(db.Model):  # type: ignore[name-defined]
    __tablename__ = "host_allocations"

    host_id: Mapped[str] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)
    vcpus: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    ram_mib: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    disk_gib: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    vms: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class TenantUsage(db.Model):  # type: ignore[name-defined]
    __tablename__ = "tenant_usage"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    vcpus: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    ram_mib: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    disk_gib: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    vms: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
