"""Rebalancing and drain plans: reviewed by an operator, executed wave by wave by one executor."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from controlplane.db import db
from controlplane.models.base import UTCDateTime, created_column, id_column, updated_column


class PlanStatus(enum.StrEnum):
    DRAFT = "draft"  # computed, waiting for review
    APPROVED = "approved"  # waiting for the executor lock / the maintenance window
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # every move done or skipped as stale (a drained host is empty)
    FAILED = "failed"  # a move failed (stopped or continued by policy), or a drained host still holds VMs
    CANCELLED = "cancelled"
    DISCARDED = "discarded"


class MoveStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # stale when its turn came (VM gone, moved, target full...)
    CANCELLED = "cancelled"


# a plan that holds (or waits for) the executor: no second plan may start, the nightly job waits
ACTIVE_PLAN_STATES = (PlanStatus.APPROVED.value, PlanStatus.RUNNING.value)
FINISHED_PLAN_STATES = (PlanStatus.SUCCEEDED.value, PlanStatus.FAILED.value, PlanStatus.CANCELLED.value,
                        PlanStatus.DISCARDED.value)


class Plan(db.Model):  # type: ignore[name-defined]
    __tablename__ = "plans"
    __table_args__ = (Index("ix_plans_status", "status"),)

    id: Mapped[str] = id_column()
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # rebalance | drain | migrate
    origin: Mapped[str] = mapped_column(String(16), nullable=False, default="manual")  # manual|nightly|maintenance
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=PlanStatus.DRAFT.value)
    host_id: Mapped[str | None] = mapped_column(ForeignKey("hosts.id"), nullable=True)  # drained host
    budget: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    on_failure: Mapped[str] = mapped_column(String(16), nullable=False, default="continue")  # continue|stop
    predicted: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    achieved: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    unplaced: Mapped[dict[str, str]] = mapped_column(JSON, nullable=False, default=dict)
    cost_ram_mib: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    current_wave: Mapped[int] = mapped_column(Integer, nullable=False, default=-1)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    operation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # exactly one chain of execution steps drives a plan: each step carries this token, and a step whose
    # token is not the plan's any more ends its chain (approve, cancel and resume start a new one)
    step_token: Mapped[str | None] = mapped_column(String(36), nullable=True)
    next_step_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __mapper_args__ = {"version_id_col": version}

    moves: Mapped[list[PlanMove]] = relationship(order_by="PlanMove.seq", back_populates="plan")


class PlanMove(db.Model):  # type: ignore[name-defined]
    __tablename__ = "plan_moves"
    __table_args__ = (Index("ix_plan_moves_plan_seq", "plan_id", "seq", unique=True),)

    id: Mapped[str] = id_column()
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    wave: Mapped[int] = mapped_column(Integer, nullable=False)
    vm_id: Mapped[str] = mapped_column(String(36), nullable=False)
    source_host_id: Mapped[str] = mapped_column(String(36), nullable=False)
    target_host_id: Mapped[str] = mapped_column(String(36), nullable=False)
    cost_ram_mib: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    gain: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=MoveStatus.PENDING.value)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    operation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    plan: Mapped[Plan] = relationship(back_populates="moves")


class ExecutorLock(db.Model):  # type: ignore[name-defined]
    """One row per lock name; ``holder`` is set with a compare-and-set UPDATE (one plan executes)."""

    __tablename__ = "executor_locks"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(36), nullable=True)
    acquired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
