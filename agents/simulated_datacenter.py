"""The in-memory data center behind the simulated driver (:mod:`agents.simulated`): hosts and domains.

One process-wide :data:`DATACENTER`; tests reach it to switch hosts off, inject failures, add foreign
domains or change ``delay_scale``. :mod:`agents.simulated` re-exports it.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass, field

from agents.base import DomainInfo, DomainState
from agents.errors import ConnectionFailed, DriverError, OperationTimeout

DEFAULT_VCPUS = 32
DEFAULT_RAM_MIB = 131072
DEFAULT_DISK_GIB = 2000
OPERATIONS = frozenset({"create", "start", "stop", "delete", "migrate", "get", "list", "facts", "usage"})
FAILURE_KINDS = {"failed": DriverError, "connection": ConnectionFailed, "timeout": OperationTimeout}
# Seconds per operation at delay_scale 1.0; migration adds MIGRATE_S_PER_GIB per GiB of RAM.
DELAYS = {"create": 0.5, "start": 0.3, "stop": 0.3, "delete": 0.2, "migrate": 1.0}
MIGRATE_S_PER_GIB = 0.25
MIGRATE_MAX_S = 2.0


def _env_delay_scale() -> float:
    try:
        return max(0.0, float(os.environ.get("CONFLUENCIA_SIM_DELAY_SCALE", "1.0")))
    except ValueError:
        return 1.0


@dataclass
class SimDomain:
    vm_id: str
    vcpus: int
    ram_mib: int
    disk_gib: int
    tenant_id: str | None
    native_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: DomainState = DomainState.STOPPED
    metadata: dict[str, str] = field(default_factory=dict)
    ignores_shutdown: bool = False  # a guest that ignores ACPI: stop() has to force it off
    cpu_time_ns: int = 0
    running_since: float | None = None

    def info(self) -> DomainInfo:
        cpu = self.cpu_time_ns
        if self.running_since is not None:  # pretend each vCPU is 10 % busy
            cpu += int((time.monotonic() - self.running_since) * 1e9 * 0.1 * self.vcpus)
        return DomainInfo(
            vm_id=self.vm_id,
            state=self.state,
            vcpus=self.vcpus,
            ram_mib=self.ram_mib,
            disk_gib=self.disk_gib,
            tenant_id=self.tenant_id,
            native_id=self.native_id,
            cpu_time_ns=cpu,
        )

    def set_running(self, running: bool) -> None:
        if running and self.state != DomainState.RUNNING:
            self.state, self.running_since = DomainState.RUNNING, time.monotonic()
        elif not running and self.state != DomainState.STOPPED:
            self.cpu_time_ns = self.info().cpu_time_ns or 0
            self.state, self.running_since = DomainState.STOPPED, None


@dataclass
class SimHost:
    name: str
    vcpus: int = DEFAULT_VCPUS
    ram_mib: int = DEFAULT_RAM_MIB
    disk_gib: int = DEFAULT_DISK_GIB
    up: bool = True
    domains: dict[str, SimDomain] = field(default_factory=dict)
    failures: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    host_uuid: str = ""

    def __post_init__(self) -> None:
        self.host_uuid = self.host_uuid or str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{self.name}.sim"))

    def add_foreign_domain(
        self, name: str, *, vcpus: int = 1, ram_mib: int = 1024, disk_gib: int = 0, running: bool = True
    ) -> SimDomain:
        """A domain someone else defined on this host (no Confluencia metadata)."""
        with DATACENTER.lock:
            dom = SimDomain(vm_id=name, vcpus=vcpus, ram_mib=ram_mib, disk_gib=disk_gib, tenant_id=None)
            dom.set_running(running)
            self.domains[name] = dom
            return dom

    def ram_mib_running(self, excluding: str | None = None) -> int:
        running = (d for d in self.domains.values() if d.state == DomainState.RUNNING)
        return sum(d.ram_mib for d in running if d.vm_id != excluding)


class SimulatedDataCenter:
    """Hosts by name and their domains, shared by every :class:`SimulatedDriver` of the process."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.hosts: dict[str, SimHost] = {}
        self.delay_scale = _env_delay_scale()

    def reset(self) -> None:
        """Forget every host, domain and injected failure (``delay_scale`` is kept)."""
        with self.lock:
            self.hosts.clear()

    def host(self, name: str) -> SimHost:
        """The host called ``name``, created with default capacity on first use."""
        with self.lock:
            h = self.hosts.get(name)
            if h is None:
                h = self.hosts[name] = SimHost(name)
            return h

    def add_host(
        self, name: str, *, vcpus: int | None = None, ram_mib: int | None = None, disk_gib: int | None = None
    ) -> SimHost:
        """Create the host or update the capacities that are given."""
        with self.lock:
            h = self.host(name)
            h.vcpus = vcpus if vcpus is not None else h.vcpus
            h.ram_mib = ram_mib if ram_mib is not None else h.ram_mib
            h.disk_gib = disk_gib if disk_gib is not None else h.disk_gib
            return h

    def inject_failure(self, host: str, operation: str, kind: str = "failed", times: int = 1) -> None:
        """Make the next ``times`` calls of ``operation`` on ``host`` fail with ``kind``."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; expected one of {sorted(OPERATIONS)}")
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; expected one of {sorted(FAILURE_KINDS)}")
        with self.lock:
            self.host(host).failures.setdefault(operation, []).append((kind, times))

    def sleep(self, seconds: float) -> None:
        if seconds * self.delay_scale > 0:
            time.sleep(seconds * self.delay_scale)


DATACENTER = SimulatedDataCenter()
