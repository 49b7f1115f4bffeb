"""Celery tasks of hosts: the periodic health check of all hosts, and the check of one host (sent when a
host is registered or its connection details change)."""

from __future__ import annotations

from controlplane.queue import HOST_CHECK, HOST_HEALTH, task
from controlplane.services import host_health


@task(HOST_HEALTH)
def hosts_health() -> dict[str, str]:
    return host_health.check_hosts()


@task(HOST_CHECK)
def host_check(host_id: str) -> dict[str, str]:
    return host_health.check_hosts([host_id])
