"""Hosts that stop answering: the control plane's side of the per-host circuit breaker.

When a worker's call to a host fails to connect (or times out connecting), the host is marked ``down`` at
once, so placement skips it without waiting for the next health check; the health check brings it back
to ``enabled`` when it answers again. Hosts an operator put in maintenance or disabled keep their state.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from controlplane.context import SYSTEM
from controlplane.core.audit import audited
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.models import Host, HostState

log = logging.getLogger("confluencia.reachability")


def mark_unreachable(uri: str | None, reason: str) -> list[str]:
    """Mark the enabled hosts with this connection URI ``down``; returns their names."""
    if not uri:
        return []
    names = []
    with transaction():
        for host in db.session.execute(select(Host).where(
                Host.uri == uri, Host.state == HostState.ENABLED.value).with_for_update()).scalars():
            with audited(SYSTEM, "host.state.down", host):
                host.state, host.state_reason = HostState.DOWN.value, f"unreachable: {reason}"[:500]
            names.append(host.name)
    if names:
        log.warning("hosts %s marked down: %s", ", ".join(names), reason)
    return names
