"""A simulated data center: the simulated hypervisor driver (the embedded default behind ``make demo``).

``sim://<hostname>?vcpus=32&ram_mib=131072&disk_gib=2000`` names a host of a
:class:`~agents.simulated_datacenter.SimulatedDataCenter`, whose hosts and domains live in a store that
several processes share (:mod:`agents.simulated_store`, a SQLite file): the file of the driver option
``state``, else of ``CONFLUENCIA_SIM_STATE``, else ``var/simulated-datacenter.sqlite3``. Every driver of the
same hostname on the same store, in any process (API workers, Celery workers), sees the same host, so two
drivers can migrate domains between each other and reconcile sees what a worker built. Tests switch a host
off (``open_datacenter().set_up("h1", False)``), inject failures and add domains Confluencia does not know
about, visible to every process. Operations take realistic time (scaled by the data center's ``delay_scale``,
from ``CONFLUENCIA_SIM_DELAY_SCALE``; tests set 0), obey the same idempotency rules and raise the same
exception types as the real drivers. Every check-then-change of a domain runs in one store transaction, so
two processes never both create or migrate the same domain.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlsplit

from agents import simulated_disks as disks
from agents import simulated_networks as networks
from agents.base import (
    ConsoleEndpoint,
    DiskInfo,
    DiskSpec,
    DomainInfo,
    DomainState,
    FirewallSpec,
    HostFacts,
    HostUsage,
    HypervisorDriver,
    MigrationResult,
    NicSpec,
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
from agents.simulated_console import close_screen, screen_for
from agents.simulated_datacenter import (
    DELAYS,
    MIGRATE_MAX_S,
    MIGRATE_S_PER_GIB,
    SimulatedDataCenter,
    open_datacenter,
)
from agents.simulated_store import SimDomain, SimHost, Tx

OPTIONS = frozenset({"state", "physnets"})

__all__ = ["SimulatedDataCenter", "SimulatedDriver", "open_datacenter"]


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


def _datacenter(datacenter: object, options: dict[str, str]) -> SimulatedDataCenter:
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise InvalidURI(f"unknown option(s) {', '.join(unknown)} for a simulated host; known: {sorted(OPTIONS)}")
    if datacenter is not None:
        if not isinstance(datacenter, SimulatedDataCenter):
            raise InvalidURI("datacenter must be a SimulatedDataCenter")
        return datacenter
    try:
        return open_datacenter(options.get("state"))
    except ValueError as exc:
        raise InvalidURI(str(exc)) from exc


class SimulatedDriver:
    """Driver for one host of a :class:`SimulatedDataCenter` (by default the one of ``CONFLUENCIA_SIM_STATE``)."""

    kind = "simulated"

    def __init__(self, uri: str, *, datacenter: SimulatedDataCenter | None = None, **options: str) -> None:
        self.uri = uri
        self.options = options
        self.hostname, caps = _parse_uri(uri)
        self.physnets = networks.physnets(options.get("physnets"))
        self.datacenter = _datacenter(datacenter, {k: v for k, v in options.items() if k != "physnets"})
        self.datacenter.add_host(self.hostname, **caps)

    @classmethod
    def validate_uri(cls, uri: str) -> None:
        _parse_uri(uri)

    # -- helpers -------------------------------------------------------------------------------

    def _host(self, operation: str) -> SimHost:
        """The host, after the reachability check and any injected failure for ``operation``."""
        return self.datacenter.check(self.hostname, operation, self.uri)

    def _domain(self, tx: Tx, vm_id: str) -> SimDomain:
        dom = tx.domain(self.hostname, vm_id)
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
        self._host("usage")
        with self.datacenter.read() as tx:
            running = [d.info() for d in tx.domains(self.hostname, running_only=True)]
        return HostUsage(
            running_domains=len(running),
            vcpus_used=sum(d.vcpus for d in running),
            ram_mib_used=sum(d.ram_mib for d in running),
            domains=tuple(running),
        )

    def get(self, vm_id: str) -> DomainInfo | None:
        self._host("get")
        with self.datacenter.read() as tx:
            dom = tx.domain(self.hostname, vm_id)
            return disks.with_volumes(tx, [dom.info()])[0] if dom else None

    def list_domains(self) -> list[DomainInfo]:
        self._host("list")
        with self.datacenter.read() as tx:
            return disks.with_volumes(tx, [d.info() for d in tx.domains(self.hostname)])

    # -- lifecycle -----------------------------------------------------------------------------

    def create(self, spec: VMSpec) -> DomainInfo:
        self._host("create")
        networks.check_nics(spec.nics, self.physnets, self.hostname, self.uri)
        with self.datacenter.read() as tx:
            existing = tx.domain(self.hostname, spec.vm_id)
        if existing is not None:
            return self._same_or_conflict(existing, spec)
        self.datacenter.sleep(DELAYS["create"])
        with self.datacenter.write() as tx:
            existing = tx.domain(self.hostname, spec.vm_id)  # a concurrent create may have won
            if existing is not None:
                return self._same_or_conflict(existing, spec)
            tx.ensure_host(self.hostname)  # the data center may have been reset meanwhile
            dom = SimDomain(host=self.hostname, vm_id=spec.vm_id, vcpus=spec.vcpus, ram_mib=spec.ram_mib,
                            disk_gib=spec.disk_gib, tenant_id=spec.tenant_id, metadata=dict(spec.metadata))
            dom = networks.with_nics(disks.add_root_disks(tx, spec, dom), spec)
            tx.insert_domain(dom)
            return disks.with_volumes(tx, [dom.info()])[0]

    def _same_or_conflict(self, dom: SimDomain, spec: VMSpec) -> DomainInfo:
        if (dom.tenant_id, dom.vcpus, dom.ram_mib, dom.disk_gib) != (
            spec.tenant_id,
            spec.vcpus,
            spec.ram_mib,
            spec.disk_gib,
        ) or not networks.same_nics(dom, spec):
            owner = "not ours" if dom.tenant_id is None else "with a different spec"
            raise AlreadyExists(
                f"domain {spec.vm_id!r} already exists on {self.hostname} ({owner})",
                host=self.uri,
                code="DOM_EXIST",
            )
        with self.datacenter.read() as tx:
            return disks.with_volumes(tx, [dom.info()])[0]

    def start(self, vm_id: str) -> DomainInfo:
        self._host("start")
        with self.datacenter.read() as tx:
            dom = self._domain(tx, vm_id)
        if dom.state == DomainState.RUNNING:
            return dom.info()
        self.datacenter.sleep(DELAYS["start"])
        with self.datacenter.write() as tx:
            dom = self._domain(tx, vm_id)
            if dom.state != DomainState.RUNNING:
                host = tx.ensure_host(self.hostname)
                free = host.ram_mib - tx.running_ram_mib(self.hostname, excluding=vm_id)
                if dom.ram_mib > free:
                    raise DriverError(
                        f"cannot start {vm_id!r} on {self.hostname}: needs {dom.ram_mib} MiB, "
                        f"{free} MiB free (cannot allocate memory)",
                        host=self.uri,
                        code="OPERATION_FAILED",
                    )
                dom = dom.running(True)
                tx.save_power(dom)
        return dom.info()

    def stop(self, vm_id: str, timeout_s: float = 30.0) -> DomainInfo:
        self._host("stop")
        with self.datacenter.read() as tx:
            dom = self._domain(tx, vm_id)
        if dom.state == DomainState.STOPPED:
            return dom.info()
        # a guest that ignores the ACPI request is forced off when the timeout expires
        if dom.ignores_shutdown:
            time.sleep(max(0.0, timeout_s))
        else:
            self.datacenter.sleep(DELAYS["stop"])
        with self.datacenter.write() as tx:
            dom = self._domain(tx, vm_id).running(False)
            tx.save_power(dom)
        close_screen(vm_id)
        return dom.info()

    def delete(self, vm_id: str) -> None:
        self._host("delete")
        with self.datacenter.read() as tx:
            if tx.domain(self.hostname, vm_id) is None:
                return
        self.datacenter.sleep(DELAYS["delete"])
        with self.datacenter.write() as tx:
            if tx.delete_domain(self.hostname, vm_id):
                disks.remove_root_disks(tx, vm_id)
        close_screen(vm_id)

    def forget(self, vm_id: str) -> None:
        self._host("delete")
        with self.datacenter.write() as tx:
            tx.delete_domain(self.hostname, vm_id)  # its disks stay: another host runs it from them now
        close_screen(vm_id)

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
        if not self.datacenter.same_as(target.datacenter):
            raise InvalidState(f"{target.uri} belongs to another simulated data center", host=self.uri)
        started = time.monotonic()
        self._host("migrate")
        target._host("create")
        if target.hostname == self.hostname:
            raise InvalidState(f"source and target are the same host {self.hostname}", host=self.uri)
        with self.datacenter.read() as tx:
            dom = tx.domain(self.hostname, vm_id)
            there = dom is None and tx.domain(target.hostname, vm_id) is not None
        if there:
            return MigrationResult(vm_id, self.uri, target.uri, time.monotonic() - started, True)
        if dom is None:
            where = f"neither {self.hostname} nor {target.hostname}"
            raise NotFound(f"domain {vm_id!r} is on {where}", host=self.uri, code="NO_DOMAIN")
        duration = min(MIGRATE_MAX_S, DELAYS["migrate"] + MIGRATE_S_PER_GIB * dom.ram_mib / 1024)
        self._copy_memory(duration, timeout_s, started, progress)
        with self.datacenter.write() as tx:
            there = self._switch_over(tx, vm_id, target)
        if progress is not None:
            progress(1.0)
        return MigrationResult(vm_id, self.uri, target.uri, time.monotonic() - started, there)

    def _switch_over(self, tx: Tx, vm_id: str, target: SimulatedDriver) -> bool:
        """Move the domain to the target in one transaction; True when another migration already did."""
        dest = tx.host(target.hostname)
        if dest is None or not dest.up:
            raise ConnectionFailed(f"migration target {target.uri} went down", host=target.uri)
        dom = tx.domain(self.hostname, vm_id)
        on_dest = tx.domain(target.hostname, vm_id)
        if dom is None:
            if on_dest is not None:  # a concurrent migration to the same target won
                return True
            raise NotFound(f"domain {vm_id!r} left {self.hostname} during the migration", host=self.uri,
                           code="NO_DOMAIN")
        if on_dest is not None:
            raise AlreadyExists(f"domain {vm_id!r} already exists on {dest.name}", host=target.uri)
        if dom.state == DomainState.RUNNING and dom.ram_mib > dest.ram_mib - tx.running_ram_mib(dest.name):
            raise DriverError(
                f"migration of {vm_id!r} failed: {dest.name} cannot allocate {dom.ram_mib} MiB",
                host=target.uri,
                code="OPERATION_FAILED",
            )
        tx.move_domain(vm_id, self.hostname, dest.name)
        return False

    def _copy_memory(
        self, duration: float, timeout_s: float, started: float, progress: ProgressCallback | None
    ) -> None:
        steps = 4
        for i in range(steps):
            scale = self.datacenter.delay_scale  # read at each step: a test may change it meanwhile
            if time.monotonic() - started + duration * scale / steps > timeout_s:
                raise OperationTimeout(f"migration did not finish within {timeout_s} s and was aborted", host=self.uri)
            self.datacenter.sleep(duration / steps, scale)
            if progress is not None:
                progress((i + 1) / (steps + 1))

    def migration_in_progress(self, vm_id: str) -> bool:
        """A simulated migration runs in the process that started it and ends with it: never in flight here."""
        self._host("get")
        return False

    # -- disks, size, console ------------------------------------------------------------------

    def attach_disk(self, vm_id: str, disk: DiskSpec) -> DiskInfo:
        self._host("get")
        with self.datacenter.write() as tx:
            return disks.attach(tx, self._domain(tx, vm_id), disk)

    def detach_disk(self, vm_id: str, disk: DiskSpec) -> None:
        self._host("get")
        with self.datacenter.write() as tx:
            self._domain(tx, vm_id)
            disks.detach(tx, vm_id, disk)

    def grow_disk(self, vm_id: str | None, disk: DiskSpec) -> DiskInfo:
        self._host("get")
        with self.datacenter.write() as tx:
            return disks.grow(tx, disk)

    def delete_disk(self, disk: DiskSpec) -> None:
        self._host("get")
        with self.datacenter.write() as tx:
            disks.delete(tx, disk)

    def resize(self, vm_id: str, vcpus: int, ram_mib: int) -> DomainInfo:
        self._host("get")
        with self.datacenter.write() as tx:
            dom = disks.resized(self._domain(tx, vm_id), vcpus, ram_mib)
            tx.save_size(dom)
            return disks.with_volumes(tx, [dom.info()])[0]

    def console(self, vm_id: str) -> ConsoleEndpoint:
        self._host("get")
        with self.datacenter.read() as tx:
            dom = self._domain(tx, vm_id)
        disks.require_running(dom)
        screen = screen_for(vm_id, dom.metadata.get("name", vm_id))
        return ConsoleEndpoint(host="127.0.0.1", port=screen.port)

    def set_firewall(self, vm_id: str, nics: tuple[NicSpec, ...], firewall: FirewallSpec) -> None:
        self._host("get")
        networks.check_nics(nics, self.physnets, self.hostname, self.uri)
        with self.datacenter.write() as tx:
            networks.set_firewall(tx, self.hostname, vm_id, nics, firewall)

    def clear_firewall(self, vm_id: str) -> None:
        self._host("get")
        with self.datacenter.write() as tx:
            networks.clear_firewall(tx, self.hostname, vm_id)

    def close(self) -> None:
        """Nothing to release: the data center lives on in its store."""
