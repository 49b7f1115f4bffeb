"""SSH public keys a municipality keeps by name, to put into its VMs' default user."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.db import db
from controlplane.models.base import created_column, id_column


class Keypair(db.Model):  # type: ignore[name-defined]
    __tablename__ = "keypairs"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_keypairs_tenant_name"),)

    id: Mapped[str] = id_column()
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False)
    name: Mapped[str] = mapped_column(String(63), nullable=False)
    public_key: Mapped[str] = mapped_column(Text, nullable=False)  # one OpenSSH line: type, base64, comment
    key_type: Mapped[str] = mapped_column(String(40), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)  # SHA256:<base64>, as ssh-keygen -l
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = created_column()
