"""SQLAlchemy models, one module per domain. They never leave the control plane: placement and agents
get plain data."""

from controlplane.models.audit import AuditEntry, AuditHead, AuditTreeHead
from controlplane.models.capacity import HostAllocation, TenantUsage
from controlplane.models.cluster import BalanceSample
from controlplane.models.consoles import ConsoleToken
from controlplane.models.flavors import Flavor
from controlplane.models.hosts import Host, HostAgentState, HostState
from controlplane.models.idempotency import IdempotencyRecord
from controlplane.models.images import Image, ImageState
from controlplane.models.keypairs import Keypair
from controlplane.models.networks import (
    Network,
    NetworkGrant,
    NetworkKind,
    Port,
    PortSecurityGroup,
    SecurityGroup,
    SecurityRule,
)
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
from controlplane.models.pools import PoolAllocation, PoolKind, StoragePool
from controlplane.models.tenants import Tenant
from controlplane.models.tokens import ApiToken
from controlplane.models.usage import UsageInterval
from controlplane.models.users import Role, User
from controlplane.models.vms import VM, VMState
from controlplane.models.volumes import Volume, VolumeState

__all__ = [
    "ACTIVE_PLAN_STATES",
    "FINISHED_PLAN_STATES",
    "UNFINISHED",
    "VM",
    "ApiToken",
    "AuditEntry",
    "AuditHead",
    "AuditTreeHead",
    "BalanceSample",
    "ConsoleToken",
    "ExecutorLock",
    "Flavor",
    "Host",
    "HostAgentState",
    "HostAllocation",
    "HostState",
    "IdempotencyRecord",
    "Image",
    "ImageState",
    "Keypair",
    "MoveStatus",
    "Network",
    "NetworkGrant",
    "NetworkKind",
    "OpKind",
    "OpStatus",
    "Operation",
    "Plan",
    "PlanMove",
    "PlanStatus",
    "PoolAllocation",
    "PoolKind",
    "Port",
    "PortSecurityGroup",
    "Role",
    "SecurityGroup",
    "SecurityRule",
    "StoragePool",
    "Tenant",
    "TenantUsage",
    "UsageInterval",
    "User",
    "VMState",
    "Volume",
    "VolumeState",
]
