"""Everything that talks to hypervisors and hosts.

One small driver protocol (:class:`agents.base.HypervisorDriver`) with several implementations:
``simulated`` (in-memory data center, the embedded default), ``libvirt`` and ``proxmox``.
Drivers receive plain specs and return plain facts; they know nothing of the database or HTTP.
Hosts that do not answer are isolated by connect deadlines and a per-host circuit breaker
(:mod:`agents.breaker`); :func:`host_status` tells the control plane whether a host is reachable.
"""

from agents.base import (
    CloudInit,
    ConsoleEndpoint,
    DiskInfo,
    DiskSpec,
    DomainInfo,
    DomainState,
    FirewallRule,
    FirewallSpec,
    HostFacts,
    HostUsage,
    HypervisorDriver,
    ImageRef,
    MigrationResult,
    NetConfig,
    NicSpec,
    VMSpec,
)
from agents.breaker import BreakerState, HostStatus
from agents.errors import (
    AlreadyExists,
    ConnectionFailed,
    DriverError,
    InvalidState,
    InvalidURI,
    NotFound,
    OperationTimeout,
)
from agents.registry import host_status, open_driver, validate_uri

__all__ = [
    "AlreadyExists",
    "BreakerState",
    "CloudInit",
    "ConnectionFailed",
    "ConsoleEndpoint",
    "DiskInfo",
    "DiskSpec",
    "DomainInfo",
    "DomainState",
    "DriverError",
    "FirewallRule",
    "FirewallSpec",
    "HostFacts",
    "HostStatus",
    "HostUsage",
    "HypervisorDriver",
    "ImageRef",
    "InvalidState",
    "InvalidURI",
    "MigrationResult",
    "NetConfig",
    "NicSpec",
    "NotFound",
    "OperationTimeout",
    "VMSpec",
    "host_status",
    "open_driver",
    "validate_uri",
]
