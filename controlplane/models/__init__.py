"""SQLAlchemy models. They never leave the control plane: placement and agents get plain data."""

from controlplane.models.infra import Flavor, Host, HostState
from controlplane.models.operations import (
    AuditEntry,
    AuditHead,
    IdempotencyRecord,
    Operation,
    OpStatus,
)
from controlplane.models.tenancy import ApiToken, Role, Tenant, User
from controlplane.models.vms import VM, VMState

__all__ = [
    "VM",
    "ApiToken",
    "AuditEntry",
    "AuditHead",
    "Flavor",
    "Host",
    "HostState",
    "IdempotencyRecord",
    "OpStatus",
    "Operation",
    "Role",
    "Tenant",
    "User",
    "VMState",
]
