"""Municipalities (tenants) with their quotas, users with roles, and API tokens."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from controlplane.db import db
from controlplane.models.base import created_column, id_column, updated_column


class Role(enum.StrEnum):
    MEMBER = "member"  # reads the tenant, manages the VMs it created
    ADMIN = "admin"  # all of the tenant's VMs, tokens of the tenant's users
    OPERATOR = "operator"  # the data center: hosts, plans, every tenant


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
    exclude_from_rebalance: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()

    __mapper_args__ = {"version_id_col": version}


class User(db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"

    id: Mapped[str] = id_column()
    username: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    display_name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), nullable=True, index=True)
    created_at: Mapped[datetime] = created_column()
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    tenant: Mapped[Tenant | None] = relationship()


class ApiToken(db.Model):  # type: ignore[name-defined]
    __tablename__ = "api_tokens"

    id: Mapped[str] = id_column()
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)  # shown in lists to recognise a token
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)  # sha256 hex
    created_at: Mapped[datetime] = created_column()
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    user: Mapped[User] = relationship()
