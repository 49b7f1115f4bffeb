"""Celery task of hosts: the periodic health check."""

from __future__ import annotations

from controlplane.queue import HOST_HEALTH, task
from controlplane.services import host_health


@task(HOST_HEALTH)
def hosts_health() -> dict[str, str]:
    return host_health.check_hosts()
