"""Host health checks. A host whose hypervisor does not answer goes ``down`` (no placement onto it) and
comes back to ``enabled`` when it answers again; a newly registered host (``pending``) becomes ``enabled``
at its first answer. Maintenance and disabled hosts are left alone.

Probes run outside any database transaction, several at a time, each bounded by the driver's connect and
call deadlines, so one host that hangs never delays the others or holds a lock.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import select

from agents import ConnectionFailed, DriverError, HypervisorDriver
from controlplane import queue
from controlplane.context import SYSTEM
from controlplane.core.audit import audited
from controlplane.core.drivers import driver_for
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.models import Host, HostState
from controlplane.services import ha

log = logging.getLogger("confluencia.health")
CHECKED = (HostState.ENABLED.value, HostState.DOWN.value, HostState.PENDING.value)
PARALLEL = 8


@dataclass(frozen=True)
class Target:
    """What a probe needs, read before the probes start (no database access from the probe threads)."""

    id: str
    name: str
    state: str
    driver: HypervisorDriver  # built before the probes (no connection yet)
    fenced: bool = False  # fenced by high availability: it must be emptied before it takes VMs again


def probe(host: Target) -> tuple[bool | None, str | None]:
    """(True, None) when the hypervisor answers, (False, why) when it cannot be reached, (None, why) when
    it answers with an error (not a connectivity problem: the state is left as it is)."""
    try:
        host.driver.host_facts()
    except ConnectionFailed as exc:
        return False, exc.message
    except DriverError as exc:
        log.warning("health check of %s: %s", host.name, exc)
        return None, exc.message
    return True, None


def check_hosts(host_ids: list[str] | None = None) -> dict[str, str]:
    """Probe the enabled, down and pending hosts (or only ``host_ids``); returns host name -> new state for
    the hosts that changed."""
    stmt = select(Host).where(Host.state.in_(CHECKED))
    if host_ids is not None:
        stmt = stmt.where(Host.id.in_(host_ids))
    hosts = []
    for h in db.session.execute(stmt).scalars():
        try:
            hosts.append(Target(h.id, h.name, h.state, driver_for(h), h.fenced_at is not None))
        except DriverError as exc:  # e.g. a secret option that cannot be decrypted: the others are checked
            log.warning("health check of %s: %s", h.name, exc)
    db.session.rollback()  # no transaction stays open across the probes
    if not hosts:
        return {}
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(hosts)), thread_name_prefix="health") as pool:
        answers = list(pool.map(probe, hosts))
    changed: dict[str, str] = {}
    revived = False
    for host, (ok, why) in zip(hosts, answers, strict=True):
        if ok is None:
            continue
        new = _next_state(host.state, ok)
        reason = None if ok else (f"not reachable yet: {why}" if new == HostState.PENDING else f"health check: {why}")
        removed: list[str] | None = None
        if ok and host.fenced and host.state in (HostState.DOWN, HostState.PENDING):  # (pending: enabled by hand)
            try:  # a fenced host rejoins empty: its VMs run elsewhere now
                removed = ha.rejoin(host.id)
            except DriverError as exc:
                new = HostState(host.state)
                reason = f"fenced; answers again but could not be emptied yet: {exc.message}"
        with transaction():
            row = db.session.execute(select(Host).where(Host.id == host.id).with_for_update()).scalar_one_or_none()
            if row is None or row.state not in CHECKED or (row.state == new and row.state_reason == reason):
                continue
            if removed is not None:
                with audited(SYSTEM, "host.rejoin", row, removed=removed):
                    row.fenced_at = None
            action = f"host.state.{new.value}" if row.state != new else "host.check"
            revived = revived or (row.state == HostState.DOWN and new == HostState.ENABLED)
            with audited(SYSTEM, action, row):
                row.state, row.state_reason = new.value, reason
            if action != "host.check":
                changed[row.name] = row.state
    if revived:  # a build in flight when the host stopped answering may have left a running copy there,
        queue.send(queue.RECONCILE, [])  # rescheduled elsewhere since: reconcile removes it now, not in 10 min
    return changed


def _next_state(current: str, answered: bool) -> HostState:
    if answered:
        return HostState.ENABLED
    return HostState.PENDING if current == HostState.PENDING else HostState.DOWN
