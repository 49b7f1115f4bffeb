"""Municipalities (tenants) and their quotas."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.db import db
from controlplane.models.base import created_column, id_column, updated_column


class Tenant(db.Model):  # type: ignore[name-defined]
    __tablename__ = "tenants"
    __table_args__ = (
        CheckConstraint("quota_vcpus >= 0 AND quota_ram_mib >= 0 AND quota_disk_gib >= 0 AND quota_vms >= 0",
                        name="ck_tenants_quota_nonneg"),
    )

    id: Mapped[str] = id_column()
    slug: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    quota_vcpus: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    quota_ram_mib: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    quota_disk_gib: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    quota_vms: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    quota_images: Mapped[int] = mapped_column(Integer, nullable=False, default=5)  # private images kept
    quota_networks: Mapped[int] = mapped_column(Integer, nullable=False, default=5)  # private networks
    quota_addresses: Mapped[int] = mapped_column(Integer, nullable=False, default=200)  # ports on any network
    exclude_from_rebalance: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    ha_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)  # off: no VM of it restarts
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()

    __mapper_args__ = {"version_id_col": version}
