"""Maintenance drains: entering maintenance plans and approves the host's drain; leaving it cancels the
drain still running (moves in flight finish)."""

from __future__ import annotations

from sqlalchemy import ScalarResult, select

from controlplane.context import Principal
from controlplane.core.audit import audited
from controlplane.core.outbox import kick_plan
from controlplane.db import db
from controlplane.errors import InvalidState, Msg
from controlplane.models import ACTIVE_PLAN_STATES, VM, Host, Plan, VMState
from controlplane.services.plans.manage import BudgetData, approve_in_tx, create_in_tx


def start_drain_in_tx(actor: Principal, host: Host) -> Plan:
    """Entering maintenance: refuse if pinned VMs live there, else plan the drain and approve it."""
    pinned = sorted(db.session.execute(select(VM.name).where(
        VM.host_id == host.id, VM.pinned, VM.state != VMState.DELETED.value)).scalars())
    if pinned:
        raise InvalidState(Msg(
            f"Host {host.name} holds pinned VMs ({', '.join(pinned)}); unpin them before maintenance.",
            f"El host {host.name} tiene VMs fijadas ({', '.join(pinned)}); desfíjelas antes del mantenimiento."),
            pinned=pinned)
    running = _drains_of(host).first()
    if running is not None:
        return running
    plan = create_in_tx(actor, "drain", BudgetData(max_moves=None, max_per_host=2), host=host.id,
                        origin="maintenance")
    approve_in_tx(actor, plan)
    return plan


def stop_drains_in_tx(actor: Principal, host: Host) -> None:
    """Leaving maintenance: a drain of this host still running is cancelled (moves in flight finish)."""
    for plan in _drains_of(host):
        with audited(actor, "plan.cancel", plan):
            plan.cancel_requested = True
            plan.reason = "host left maintenance"
        kick_plan(plan)


def lock_drains_of(host_id: str) -> list[Plan]:
    """Row-lock the approved or running drain plans of a host (before the host row: the executor's order)."""
    return list(db.session.execute(select(Plan).where(
        Plan.kind == "drain", Plan.host_id == host_id, Plan.status.in_(ACTIVE_PLAN_STATES))
        .order_by(Plan.id).with_for_update()).scalars())


def _drains_of(host: Host) -> ScalarResult[Plan]:
    return db.session.execute(select(Plan).where(
        Plan.kind == "drain", Plan.host_id == host.id, Plan.status.in_(ACTIVE_PLAN_STATES))).scalars()
