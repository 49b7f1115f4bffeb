"""Who is acting and in which request: set by the API (or a task), read by services and the audit log."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from controlplane.models import Role


@dataclass(frozen=True)
class Principal:
    user_id: str | None
    username: str
    role: str
    tenant_id: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.role == Role.OPERATOR

    @property
    def is_tenant_admin(self) -> bool:
        return self.role == Role.ADMIN

    def can_see_tenant(self, tenant_id: str | None) -> bool:
        return self.is_operator or (tenant_id is not None and tenant_id == self.tenant_id)


SYSTEM = Principal(user_id=None, username="system", role="system")

# the HTTP request id; in a worker, the request id of the operation it runs (or the Celery task id)
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# set by the Celery task wrapper: which delivery is doing the work (see Operation.worker_id)
worker_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("worker_id", default=None)

# who is acting and for which municipality (the request's principal; in a worker, from the task's headers)
actor: contextvars.ContextVar[str | None] = contextvars.ContextVar("actor", default=None)
tenant: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenant", default=None)

# set while a worker runs an operation: audit entries name it
operation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("operation_id", default=None)
