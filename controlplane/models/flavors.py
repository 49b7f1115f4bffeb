"""VM sizes (flavors) that municipalities choose from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.db import db
from controlplane.models.base import created_column, id_column


class Flavor(db.Model):  # type: ignore[name-defined]
    __tablename__ = "flavors"
    __table_args__ = (
        CheckConstraint("vcpus > 0 AND ram_mib > 0 AND disk_gib >= 0", name="ck_flavors_pos"),
    )

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(63), unique=True, nullable=False)
    vcpus: Mapped[int] = mapped_column(Integer, nullable=False)
    ram_mib: Mapped[int] = mapped_column(Integer, nullable=False)
    disk_gib: Mapped[int] = mapped_column(Integer, nullable=False)
    description: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    is_public: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = created_column()
