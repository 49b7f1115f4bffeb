"""Celery tasks of hosts: the periodic health check of all hosts, and the check of one host (sent when a
host is registered or its connection details change), and the SSH host agent's gathering of facts and load."""

from __future__ import annotations

from typing import Any

from controlplane.queue import HA_CHECK, HOST_CHECK, HOST_GATHER, HOST_HEALTH, task
from controlplane.services import ha, host_agent, host_health


@task(HOST_HEALTH)
def hosts_health() -> dict[str, str]:
    return host_health.check_hosts()


@task(HOST_CHECK)
def host_check(host_id: str) -> dict[str, str]:
    return host_health.check_hosts([host_id])


@task(HOST_GATHER)
def hosts_gather(host_ids: list[str] | None = None) -> dict[str, str]:
    """Facts and measured load of the hosts with an SSH agent address (controlplane.services.host_agent)."""
    return host_agent.gather(host_ids)


@task(HA_CHECK)
def ha_check() -> dict[str, Any]:
    """High availability: fence the hosts down past the grace period and restart their VMs elsewhere."""
    return ha.check()
