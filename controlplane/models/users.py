"""People (and scripts) who act on the API, with their role."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from controlplane.db import db
from controlplane.models.base import UTCDateTime, created_column, id_column
from controlplane.models.tenants import Tenant


class Role(enum.StrEnum):
    MEMBER = "member"  # reads the tenant, manages the VMs it created
    ADMIN = "admin"  # all of the tenant's VMs, tokens of the tenant's users
    OPERATOR = "operator"  # the data center: hosts, plans, every tenant


class User(db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"

    id: Mapped[str] = id_column()
    username: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    display_name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), nullable=True, index=True)
    created_at: Mapped[datetime] = created_column()
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # signed in through the province's identity provider: "<issuer> <sub>"; null for local users
    external_subject: Mapped[str | None] = mapped_column(String(400), unique=True, nullable=True)

    tenant: Mapped[Tenant | None] = relationship()
