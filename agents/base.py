"""The driver protocol: plain specs in, plain facts out.

Every call is idempotent with respect to the real state of the hypervisor:
creating a domain that already exists with our id succeeds, deleting a domain that is gone succeeds,
migrating a VM that is already on the target succeeds. That is what makes task redelivery safe.

Every call has deadlines: connecting (driver option ``connect_timeout``), each exchange with the host
(libvirt keepalive, Proxmox ``http_timeout``) and the long operations themselves (``stop(timeout_s)``,
``migrate(timeout_s)``, task timeouts). A host that does not answer raises :class:`ConnectionFailed` and then
fails fast for a cool-down (:mod:`agents.breaker`; ``agents.registry.host_status`` tells whether it answers).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class DomainState(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"
    CRASHED = "crashed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class VMSpec:
    """What the control plane asks a hypervisor to run. ``vm_id`` is our id and names the domain."""

    vm_id: str
    name: str
    vcpus: int
    ram_mib: int
    disk_gib: int
    tenant_id: str
    image: str | None = None  # template / image reference, driver-specific
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DomainInfo:
    vm_id: str
    state: DomainState
    vcpus: int
    ram_mib: int
    disk_gib: int = 0
    tenant_id: str | None = None  # None: not created by Confluencia (unknown domain)
    native_id: str | None = None  # libvirt UUID, Proxmox VMID, ...
    cpu_time_ns: int | None = None


@dataclass(frozen=True)
class HostFacts:
    hostname: str
    vcpus: int
    ram_mib: int
    disk_gib: int | None
    hypervisor: str  # e.g. "QEMU 7.2.0"
    driver_version: str  # e.g. "libvirt 9.0.0"
    host_uuid: str | None = None


@dataclass(frozen=True)
class HostUsage:
    running_domains: int
    vcpus_used: int
    ram_mib_used: int
    domains: tuple[DomainInfo, ...] = ()


@dataclass(frozen=True)
class MigrationResult:
    vm_id: str
    source_uri: str
    target_uri: str
    duration_s: float
    already_there: bool = False


ProgressCallback = Callable[[float], None]


@runtime_checkable
class HypervisorDriver(Protocol):
    """One connection to one hypervisor host."""

    kind: str
    uri: str

    def host_facts(self) -> HostFacts: ...

    def host_usage(self) -> HostUsage: ...

    def get(self, vm_id: str) -> DomainInfo | None:
        """The domain with our id, or None when it does not exist on this host."""
        ...

    def list_domains(self) -> list[DomainInfo]:
        """Every domain on the host, ours (tenant_id set) and unknown ones."""
        ...

    def create(self, spec: VMSpec) -> DomainInfo:
        """Define the domain (not started). Existing domain with our id and same spec: success."""
        ...

    def start(self, vm_id: str) -> DomainInfo:
        """Start; already running is success."""
        ...

    def stop(self, vm_id: str, timeout_s: float = 30.0) -> DomainInfo:
        """Graceful shutdown, forced off after ``timeout_s``; already stopped is success."""
        ...

    def delete(self, vm_id: str) -> None:
        """Stop if needed and remove the domain and its storage; already gone is success."""
        ...

    def migrate(
        self,
        vm_id: str,
        target: HypervisorDriver,
        *,
        timeout_s: float = 600.0,
        progress: ProgressCallback | None = None,
    ) -> MigrationResult:
        """Live-migrate to ``target`` (same driver kind). Already on the target: success."""
        ...

    def migration_in_progress(self, vm_id: str) -> bool:
        """Whether a migration of our domain ``vm_id`` out of this host is still running on the hypervisor
        side (it can outlive the process that started it, as Proxmox tasks do)."""
        ...

    def close(self) -> None: ...
