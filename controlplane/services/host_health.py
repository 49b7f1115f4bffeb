"""Host health checks: a host whose hypervisor does not answer goes ``down`` (no placement onto it);
it comes back to ``enabled`` when it answers again. Maintenance and disabled hosts are left alone."""

from __future__ import annotations

import logging

from sqlalchemy import select

from agents import ConnectionFailed, DriverError
from controlplane.context import SYSTEM
from controlplane.core.audit import audited
from controlplane.core.drivers import driver_for
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.models import Host, HostState

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
            with audited(SYSTEM, f"host.state.{answer.value}", row):
                row.state, row.state_reason = answer.value, why
            changed[row.name] = row.state
    return changed
