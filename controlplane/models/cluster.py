"""The data center's balance over time: one sample every few minutes (the dashboard's imbalance chart)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.db import db
from controlplane.models.base import created_column


class BalanceSample(db.Model):  # type: ignore[name-defined]
    """The imbalance (summed standard deviation of host utilisation) and its parts at one moment."""

    __tablename__ = "balance_samples"
    __table_args__ = (Index("ix_balance_samples_at", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    at: Mapped[datetime] = created_column()
    objective: Mapped[float] = mapped_column(Float, nullable=False)
    stdev: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
