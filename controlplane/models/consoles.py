"""One-use console tokens: what the console proxy (websockify) may connect one browser to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.db import db
from controlplane.models.base import UTCDateTime, created_column, id_column


class ConsoleToken(db.Model):  # type: ignore[name-defined]
    """Only the SHA-256 of the token is stored; it is valid once, until ``expires_at``."""

    __tablename__ = "console_tokens"

    id: Mapped[str] = id_column()
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    vm_id: Mapped[str] = mapped_column(ForeignKey("vms.id"), nullable=False, index=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False)
    host: Mapped[str] = mapped_column(String(255), nullable=False)  # where the guest's VNC answers
    port: Mapped[int] = mapped_column(Integer, nullable=False)
    password: Mapped[str | None] = mapped_column(Text, nullable=True)  # a hypervisor's one-time ticket
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = created_column()
