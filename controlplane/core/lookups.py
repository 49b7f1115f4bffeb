"""Queries several use cases share: a host by id or name, the operation in progress on an object, and
the anti-affinity key of a VM."""

from __future__ import annotations

from sqlalchemy import select

from controlplane.db import db
from controlplane.errors import ValidationFailed, not_found
from controlplane.models import ACTIVE_PLAN_STATES, UNFINISHED, Host, Operation, Plan


def find_host(ref: str, *, lock: bool = False) -> Host | None:
    """The host whose id or name is ``ref`` (row-locked with ``lock``), or None."""
    stmt = select(Host).where((Host.id == ref) | (Host.name == ref))
    return db.session.execute(stmt.with_for_update() if lock else stmt).scalar_one_or_none()


def host_or_404(ref: str, *, lock: bool = False) -> Host:
    """For a path parameter: an unknown host is 404."""
    host = find_host(ref, lock=lock)
    if host is None:
        raise not_found("host", ref)
    return host


def host_or_422(ref: str | None, field: str = "host", *, lock: bool = False) -> Host:
    """For a body field naming a host: an unknown host is a validation error on that field."""
    host = find_host(ref, lock=lock) if ref else None
    if host is None:
        raise ValidationFailed(f"Unknown host {ref!r}.", errors={field: ["Unknown host."]})
    return host


def operation_in_progress(target_id: str) -> Operation | None:
    """The pending or running operation on ``target_id``, if any."""
    return db.session.execute(select(Operation).where(
        Operation.target_id == target_id, Operation.status.in_(UNFINISHED))
        .order_by(Operation.created_at)).scalars().first()


def draining_host_ids() -> set[str]:
    """Hosts an approved or running drain plan is emptying: they take no new VMs (as in maintenance)."""
    ids = db.session.execute(select(Plan.host_id).where(
        Plan.kind == "drain", Plan.status.in_(ACTIVE_PLAN_STATES), Plan.host_id.is_not(None))).scalars()
    return {host_id for host_id in ids if host_id is not None}


def anti_affinity_key(tenant_id: str, group: str | None) -> frozenset[str]:
    """Anti-affinity groups are per tenant: two municipalities may use the same group name."""
    return frozenset() if not group else frozenset({f"{tenant_id}/{group}"})
