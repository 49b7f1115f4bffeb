"""Everything that talks to hypervisors and hosts.

One small driver protocol (:class:`agents.base.HypervisorDriver`) with several implementations:
``simulated`` (in-memory data center, the embedded default), ``libvirt`` and ``proxmox``.
Drivers receive plain specs and return plain facts; they know nothing of the database or HTTP.
"""

from agents.base import (
    DomainInfo,
    DomainState,
    HostFacts,
    HostUsage,
    HypervisorDriver,
    MigrationResult,
    VMSpec,
)
from agents.errors import (
    AlreadyExists,
    ConnectionFailed,
    DriverError,
    InvalidState,
    InvalidURI,
    NotFound,
    OperationTimeout,
)
from agents.registry import open_driver, validate_uri

__all__ = [
    "AlreadyExists",
    "ConnectionFailed",
    "DomainInfo",
    "DomainState",
    "DriverError",
    "HostFacts",
    "HostUsage",
    "HypervisorDriver",
    "InvalidState",
    "InvalidURI",
    "MigrationResult",
    "NotFound",
    "OperationTimeout",
    "VMSpec",
    "open_driver",
    "validate_uri",
]
