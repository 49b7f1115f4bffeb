"""SQLAlchemy models, one module per domain. They never leave the control plane: placement and agents
get plain data."""

from controlplane.models.audit import AuditEntry, AuditHead
from controlplane.models.capacity import HostAllocation, TenantUsage
from controlplane.models.flavors import Flavor
from controlplane.models.hosts import Host, HostState
from controlplane.models.idempotency import IdempotencyRecord
from controlplane.models.operations import UNFINISHED, Operation, OpKind, OpStatus
from controlplane.models.plans import (
    ACTIVE_PLAN_STATES,
    FINISHED_PLAN_STATES,
    ExecutorLock,
    MoveStatus,
    Plan,
    PlanMove,
    PlanStatus,
)
from controlplane.models.tenants import Tenant
from controlplane.models.tokens import ApiToken
from controlplane.models.users import Role, User
from controlplane.models.vms import VM, VMState

__all__ = [
    "ACTIVE_PLAN_STATES",
    "FINISHED_PLAN_STATES",
    "UNFINISHED",
    "VM",
    "ApiToken",
    "AuditEntry",
    "AuditHead",
    "ExecutorLock",
    "Flavor",
    "Host",
    "HostAllocation",
    "HostState",
    "IdempotencyRecord",
    "MoveStatus",
    "OpKind",
    "OpStatus",
    "Operation",
    "Plan",
    "PlanMove",
    "PlanStatus",
    "Role",
    "Tenant",
    "TenantUsage",
    "User",
    "VMState",
]
