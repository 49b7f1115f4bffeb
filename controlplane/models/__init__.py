"""SQLAlchemy models. They never leave the control plane: placement and agents get plain data."""

from controlplane.models.infra import Flavor, Host, HostState
from controlplane.models.operations import (
    AuditEntry,
    AuditHead,
    IdempotencyRecord,
    Operation,
    OpStatus,
)
from controlplane.models.plans import ExecutorLock, MoveStatus, Plan, PlanMove, PlanStatus
from controlplane.models.tenancy import ApiToken, Role, Tenant, User
from controlplane.models.vms import VM, VMState

__all__ = [
    "VM",
    "ApiToken",
    "AuditEntry",
    "AuditHead",
    "ExecutorLock",
    "Flavor",
    "Host",
    "HostState",
    "IdempotencyRecord",
    "MoveStatus",
    "OpStatus",
    "Operation",
    "Plan",
    "PlanMove",
    "PlanStatus",
    "Role",
    "Tenant",
    "User",
    "VMState",
]
