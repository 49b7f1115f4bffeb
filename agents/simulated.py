"""An in-memory data center: the simulated hypervisor driver.

``sim://<hostname>?vcpus=32&ram_mib=131072&disk_gib=2000`` names a host of the process-wide
:data:`DATACENTER`. Every driver object of the same hostname sees the same host, so two drivers can
migrate domains between each other, tests can switch a host off (``DATACENTER.host("h1").up = False``),
inject failures and add domains Confluencia does not know about. Operations take realistic time
(scaled by ``DATACENTER.delay_scale``, from ``CONFLUENCIA_SIM_DELAY_SCALE``; tests set 0) and obey the
same idempotency rules and raise the same exception types as the real drivers. The data center itself
(hosts, domains, failure injection) is :mod:`agents.simulated_datacenter`.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlsplit

from agents.base import (
    DomainInfo,
    DomainState,
    HostFacts,
    HostUsage,
    HypervisorDriver,
    MigrationResult,
    ProgressCallback,
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
from agents.simulated_datacenter import (
    DATACENTER,
    DELAYS,
    FAILURE_KINDS,
    MIGRATE_MAX_S,
    MIGRATE_S_PER_GIB,
    SimDomain,
    SimHost,
)


def _parse_uri(uri: str) -> tuple[str, dict[str, int]]:
    try:
        parts = urlsplit(uri)
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise InvalidURI(f"malformed simulated host URI {uri!r}: {exc}") from exc
    if parts.scheme != "sim":
        raise InvalidURI(f"simulated host URI must start with sim://, got {uri!r}")
    name = parts.hostname or ""
    if not name or parts.path not in ("", "/") or parts.username or parts.port is not None:
        raise InvalidURI(f"simulated host URI must be sim://<hostname>[?vcpus=&ram_mib=], got {uri!r}")
    caps: dict[str, int] = {}
    for key, value in query:
        if key not in ("vcpus", "ram_mib", "disk_gib"):
            raise InvalidURI(f"unknown parameter {key!r} in simulated host URI {uri!r}")
        if not value.isdigit() or int(value) <= 0:
            raise InvalidURI(f"{key} must be a positive integer in {uri!r}")
        caps[key] = int(value)
    return name, caps


class SimulatedDriver:
    """Driver for one host of :data:`DATACENTER`."""

    kind = "simulated"

    def __init__(self, uri: str, **options: str) -> None:
        self.uri = uri
        self.options = options
        self.hostname, caps = _parse_uri(uri)
        DATACENTER.add_host(self.hostname, **caps)

    @classmethod
    def validate_uri(cls, uri: str) -> None:
        _parse_uri(uri)

    # -- helpers -------------------------------------------------------------------------------

    def _host(self, operation: str) -> SimHost:
        """The host, after the reachability check and any injected failure for ``operation``."""
        with DATACENTER.lock:
            host = DATACENTER.host(self.hostname)
            if not host.up:
                raise ConnectionFailed(f"cannot connect to {self.uri}: host is down", host=self.uri)
            queue = host.failures.get(operation)
            if queue:
                kind, times = queue[0]
                if times <= 1:
                    queue.pop(0)
                else:
                    queue[0] = (kind, times - 1)
                raise FAILURE_KINDS[kind](
                    f"injected {kind} failure of {operation} on {self.hostname}", host=self.uri, code=kind
                )
            return host

    def _domain(self, host: SimHost, vm_id: str) -> SimDomain:
        dom = host.domains.get(vm_id)
        if dom is None:
            raise NotFound(f"domain {vm_id!r} not found on {self.hostname}", host=self.uri, code="NO_DOMAIN")
        return dom

    # -- facts ---------------------------------------------------------------------------------

    def host_facts(self) -> HostFacts:
        host = self._host("facts")
        return HostFacts(
            hostname=host.name,
            vcpus=host.vcpus,
            ram_mib=host.ram_mib,
            disk_gib=host.disk_gib,
            hypervisor="SimQEMU 8.2.0",
            driver_version="confluencia-sim 1.0",
            host_uuid=host.host_uuid,
        )

    def host_usage(self) -> HostUsage:
        host = self._host("usage")
        with DATACENTER.lock:
            running = [d.info() for d in host.domains.values() if d.state == DomainState.RUNNING]
        return HostUsage(
            running_domains=len(running),
            vcpus_used=sum(d.vcpus for d in running),
            ram_mib_used=sum(d.ram_mib for d in running),
            domains=tuple(running),
        )

    def get(self, vm_id: str) -> DomainInfo | None:
        host = self._host("get")
        with DATACENTER.lock:
            dom = host.domains.get(vm_id)
            return dom.info() if dom else None

    def list_domains(self) -> list[DomainInfo]:
        host = self._host("list")
        with DATACENTER.lock:
            return [d.info() for d in host.domains.values()]

    # -- lifecycle -----------------------------------------------------------------------------

    def create(self, spec: VMSpec) -> DomainInfo:
        host = self._host("create")
        with DATACENTER.lock:
            existing = host.domains.get(spec.vm_id)
            if existing is not None:
                return self._same_or_conflict(existing, spec)
        DATACENTER.sleep(DELAYS["create"])
        with DATACENTER.lock:
            existing = host.domains.get(spec.vm_id)  # a concurrent create may have won
            if existing is not None:
                return self._same_or_conflict(existing, spec)
            dom = SimDomain(
                vm_id=spec.vm_id,
                vcpus=spec.vcpus,
                ram_mib=spec.ram_mib,
                disk_gib=spec.disk_gib,
                tenant_id=spec.tenant_id,
                metadata=dict(spec.metadata),
            )
            host.domains[spec.vm_id] = dom
            return dom.info()

    def _same_or_conflict(self, dom: SimDomain, spec: VMSpec) -> DomainInfo:
        if (dom.tenant_id, dom.vcpus, dom.ram_mib, dom.disk_gib) != (
            spec.tenant_id,
            spec.vcpus,
            spec.ram_mib,
            spec.disk_gib,
        ):
            owner = "not ours" if dom.tenant_id is None else "with a different spec"
            raise AlreadyExists(
                f"domain {spec.vm_id!r} already exists on {self.hostname} ({owner})",
                host=self.uri,
                code="DOM_EXIST",
            )
        return dom.info()

    def start(self, vm_id: str) -> DomainInfo:
        host = self._host("start")
        with DATACENTER.lock:
            dom = self._domain(host, vm_id)
            if dom.state == DomainState.RUNNING:
                return dom.info()
        DATACENTER.sleep(DELAYS["start"])
        with DATACENTER.lock:
            dom = self._domain(host, vm_id)
            if dom.state != DomainState.RUNNING:
                free = host.ram_mib - host.ram_mib_running(excluding=vm_id)
                if dom.ram_mib > free:
                    raise DriverError(
                        f"cannot start {vm_id!r} on {self.hostname}: needs {dom.ram_mib} MiB, "
                        f"{free} MiB free (cannot allocate memory)",
                        host=self.uri,
                        code="OPERATION_FAILED",
                    )
                dom.set_running(True)
            return dom.info()

    def stop(self, vm_id: str, timeout_s: float = 30.0) -> DomainInfo:
        host = self._host("stop")
        with DATACENTER.lock:
            dom = self._domain(host, vm_id)
            if dom.state == DomainState.STOPPED:
                return dom.info()
            forced = dom.ignores_shutdown
        # a guest that ignores the ACPI request is forced off when the timeout expires
        if forced:
            time.sleep(max(0.0, timeout_s))
        else:
            DATACENTER.sleep(DELAYS["stop"])
        with DATACENTER.lock:
            dom = self._domain(host, vm_id)
            dom.set_running(False)
            return dom.info()

    def delete(self, vm_id: str) -> None:
        host = self._host("delete")
        with DATACENTER.lock:
            if vm_id not in host.domains:
                return
        DATACENTER.sleep(DELAYS["delete"])
        with DATACENTER.lock:
            host.domains.pop(vm_id, None)

    def migrate(
        self,
        vm_id: str,
        target: HypervisorDriver,
        *,
        timeout_s: float = 600.0,
        progress: ProgressCallback | None = None,
    ) -> MigrationResult:
        if not isinstance(target, SimulatedDriver):
            raise InvalidState(f"cannot migrate from {self.kind} to {target.kind}", host=self.uri)
        started = time.monotonic()
        source = self._host("migrate")
        dest = target._host("create")
        if dest is source:
            raise InvalidState(f"source and target are the same host {self.hostname}", host=self.uri)
        with DATACENTER.lock:
            dom = source.domains.get(vm_id)
            if dom is None:
                if vm_id in dest.domains:
                    return MigrationResult(vm_id, self.uri, target.uri, time.monotonic() - started, True)
                where = f"neither {self.hostname} nor {dest.name}"
                raise NotFound(f"domain {vm_id!r} is on {where}", host=self.uri, code="NO_DOMAIN")
            ram = dom.ram_mib
        duration = min(MIGRATE_MAX_S, DELAYS["migrate"] + MIGRATE_S_PER_GIB * ram / 1024)
        self._copy_memory(duration, timeout_s, started, progress)
        with DATACENTER.lock:
            if not dest.up:
                raise ConnectionFailed(f"migration target {target.uri} went down", host=target.uri)
            dom = self._domain(source, vm_id)
            if vm_id in dest.domains:
                raise AlreadyExists(f"domain {vm_id!r} already exists on {dest.name}", host=target.uri)
            if dom.state == DomainState.RUNNING and dom.ram_mib > dest.ram_mib - dest.ram_mib_running():
                raise DriverError(
                    f"migration of {vm_id!r} failed: {dest.name} cannot allocate {dom.ram_mib} MiB",
                    host=target.uri,
                    code="OPERATION_FAILED",
                )
            dest.domains[vm_id] = source.domains.pop(vm_id)
        if progress is not None:
            progress(1.0)
        return MigrationResult(vm_id, self.uri, target.uri, time.monotonic() - started)

    def _copy_memory(
        self, duration: float, timeout_s: float, started: float, progress: ProgressCallback | None
    ) -> None:
        steps = 4
        for i in range(steps):
            if time.monotonic() - started + duration * DATACENTER.delay_scale / steps > timeout_s:
                raise OperationTimeout(f"migration did not finish within {timeout_s} s and was aborted", host=self.uri)
            DATACENTER.sleep(duration / steps)
            if progress is not None:
                progress((i + 1) / (steps + 1))

    def close(self) -> None:
        """Nothing to release: the data center lives on."""
