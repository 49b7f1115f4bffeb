"""Host health checks: a host whose hypervisor does not answer goes ``down`` (no placement onto it);
it comes back to ``enabled`` when it answers again. Maintenance and disabled hosts are left alone."""

from __future__ import annotations

import logging

from sqlalchemy import select

from agents import ConnectionFailed, DriverError
from controlplane import audit
from controlplane.context import SYSTEM
from controlplane.db import db
from controlplane.models import Host, HostState
from controlplane.services.lifecycle import driver_for
from controlplane.services.tx import transaction

log = logging.getLogger("confluencia.health")


def check_hosts() -> dict[str, str]:
    """Probe every enabled or down host; returns host name -> new state for the hosts that changed."""
    hosts = list(db.session.execute(select(Host).where(
        Host.state.in_([HostState.ENABLED.value, HostState.DOWN.value]))).scalars())
    db.session.rollback()
    changed: dict[str, str] = {}
    for host in hosts:
        try:
            driver_for(host).host_facts()
            answer, why = HostState.ENABLED, None
        except ConnectionFailed as exc:
            answer, why = HostState.DOWN, f"health check: {exc.message}"
        except DriverError as exc:  # it answers, with an error: not a connectivity problem
            log.warning("health check of %s: %s", host.name, exc)
            continue
        with transaction():
            row = db.session.execute(select(Host).where(Host.id == host.id).with_for_update()).scalar_one()
            if row.state == answer or row.state not in (HostState.ENABLED, HostState.DOWN):
                continue
            before = {"state": row.state}
            row.state, row.state_reason = answer.value, why
            audit.record(SYSTEM, f"host.state.{answer.value}", "host", row.id, before=before,
                         after={"state": row.state, "state_reason": why})
            changed[row.name] = row.state
    return changed
