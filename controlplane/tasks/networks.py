"""Celery task that applies the security groups of a host's VMs again (``confluencia.host.firewall``)."""

from __future__ import annotations

from typing import Any

from controlplane.models import OpKind
from controlplane.queue import task, task_for
from controlplane.services import security_groups
from controlplane.tasks.runner import RETRY, run


@task(task_for(OpKind.HOST_FIREWALL), bind=True, **RETRY)
def host_firewall(self: Any, op_id: str) -> None:
    run(self, op_id, security_groups.run_host_firewall, security_groups.give_up)
