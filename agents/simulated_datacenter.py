"""The simulated data center behind the simulated driver (:mod:`agents.simulated`): hosts and domains.

A :class:`SimulatedDataCenter` is a handle on one :class:`~agents.simulated_store.SimStore`; every handle on the
same store file, in any process, sees the same hosts, domains, injected failures and hosts switched off.
:func:`open_datacenter` finds the store of ``CONFLUENCIA_SIM_STATE`` (default
``var/simulated-datacenter.sqlite3`` under the working directory, the demo database's directory); a driver
option ``state`` names another file; :meth:`SimulatedDataCenter.in_memory` makes a private one for unit use.

What tests change, each an explicit call that writes the store: :meth:`~SimulatedDataCenter.set_up`,
:meth:`~SimulatedDataCenter.inject_failure`, :meth:`~SimulatedDataCenter.add_foreign_domain`,
:meth:`~SimulatedDataCenter.remove_domain`, :meth:`~SimulatedDataCenter.set_ignores_shutdown`,
:meth:`~SimulatedDataCenter.set_delay_scale` and :meth:`~SimulatedDataCenter.reset`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path

from agents.base import DomainInfo
from agents.errors import ConnectionFailed, DriverError, NotFound, OperationTimeout
from agents.simulated_store import (
    DEFAULT_DISK_GIB,
    DEFAULT_RAM_MIB,
    DEFAULT_VCPUS,
    MEMORY,
    SimDomain,
    SimHost,
    SimStore,
    Tx,
)

ENV_STATE = "CONFLUENCIA_SIM_STATE"
ENV_DELAY_SCALE = "CONFLUENCIA_SIM_DELAY_SCALE"
DEFAULT_STATE = Path("var") / "simulated-datacenter.sqlite3"
OPERATIONS = frozenset({"create", "start", "stop", "delete", "migrate", "get", "list", "facts", "usage"})
FAILURE_KINDS = {"failed": DriverError, "connection": ConnectionFailed, "timeout": OperationTimeout}
# Seconds per operation at delay_scale 1.0; migration adds MIGRATE_S_PER_GIB per GiB of RAM.
DELAYS = {"create": 0.5, "start": 0.3, "stop": 0.3, "delete": 0.2, "migrate": 1.0}
MIGRATE_S_PER_GIB = 0.25
MIGRATE_MAX_S = 2.0

__all__ = ["DEFAULT_DISK_GIB", "DEFAULT_RAM_MIB", "DEFAULT_VCPUS", "DELAYS", "FAILURE_KINDS", "MIGRATE_MAX_S",
           "MIGRATE_S_PER_GIB", "OPERATIONS", "SimDomain", "SimHost", "SimulatedDataCenter", "open_datacenter",
           "state_path"]


def _env_delay_scale() -> float:
    try:
        return max(0.0, float(os.environ.get(ENV_DELAY_SCALE, "1.0")))
    except ValueError:
        return 1.0


def state_path(path: str | os.PathLike[str] | None = None) -> str:
    """The store file: ``path``, else ``CONFLUENCIA_SIM_STATE``, else ``var/simulated-datacenter.sqlite3``."""
    raw = os.fspath(path) if path else os.environ.get(ENV_STATE) or str(DEFAULT_STATE)
    if raw == MEMORY:
        raise ValueError("an in-memory simulated data center is private: use SimulatedDataCenter.in_memory() and "
                         "pass it to the driver as datacenter=")
    return str(Path(raw).expanduser().absolute())


class SimulatedDataCenter:
    """Hosts by name and their domains, kept in one :class:`SimStore`."""

    def __init__(self, store: SimStore) -> None:
        self.store = store

    @classmethod
    def in_memory(cls) -> SimulatedDataCenter:
        """A private data center in this process's memory (unit tests): pass it as ``datacenter=``."""
        return cls(SimStore(MEMORY))

    def __repr__(self) -> str:
        return f"SimulatedDataCenter({self.store.path!r})"

    def same_as(self, other: SimulatedDataCenter) -> bool:
        """True when both handles reach the same hosts (the same store file, or the same memory store)."""
        return self.store is other.store or (not self.store.memory and self.store.path == other.store.path)

    def read(self) -> AbstractContextManager[Tx]:
        return self.store.read()

    def write(self) -> AbstractContextManager[Tx]:
        return self.store.write()

    # -- hosts -----------------------------------------------------------------------------------

    def add_host(self, name: str, *, vcpus: int | None = None, ram_mib: int | None = None,
                 disk_gib: int | None = None) -> SimHost:
        """Create the host (default capacity) or update the capacities that are given."""
        with self.write() as tx:
            return tx.update_host(name, vcpus=vcpus, ram_mib=ram_mib, disk_gib=disk_gib)

    def host(self, name: str) -> SimHost:
        """A snapshot of the host called ``name``, created with default capacity on first use."""
        with self.read() as tx:
            host = tx.host(name)
        if host is None:
            with self.write() as tx:
                host = tx.ensure_host(name)
        return host

    def host_names(self) -> list[str]:
        with self.read() as tx:
            return tx.host_names()

    def set_up(self, name: str, up: bool = True) -> None:
        """Switch the host on (``True``) or off: a host that is off refuses every call (``ConnectionFailed``)."""
        with self.write() as tx:
            tx.update_host(name, up=up)

    def power_off(self, name: str) -> None:
        """What an out-of-band power switch does (a fence): the host is off and none of its guests runs."""
        with self.write() as tx:
            tx.update_host(name, up=False)
            for dom in tx.domains(name, running_only=True):
                tx.save_power(dom.running(False))

    def remove_hosts(self, names: Iterable[str]) -> None:
        """Forget these hosts with their domains and injected failures."""
        with self.write() as tx:
            for name in names:
                tx.remove_host(name)

    def reset(self) -> None:
        """Forget every host, domain and injected failure (``delay_scale`` is kept)."""
        with self.write() as tx:
            tx.clear()

    # -- failures --------------------------------------------------------------------------------

    def inject_failure(self, host: str, operation: str, kind: str = "failed", times: int = 1) -> None:
        """Make the next ``times`` calls of ``operation`` on ``host`` fail with ``kind``, in any process."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; expected one of {sorted(OPERATIONS)}")
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; expected one of {sorted(FAILURE_KINDS)}")
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        with self.write() as tx:
            tx.ensure_host(host)
            tx.add_failure(host, operation, kind, times)

    def failures(self, host: str) -> list[tuple[str, str, int]]:
        """The failures still waiting on ``host``: ``(operation, kind, times)``, oldest first."""
        with self.read() as tx:
            return tx.failures(host)

    def check(self, name: str, operation: str, uri: str) -> SimHost:
        """The host, after the reachability check and any injected failure for ``operation`` (consumed)."""
        with self.read() as tx:
            host, failure = tx.host_and_failure(name, operation)
        if host is None or (host.up and failure is not None):  # rare: take the write lock only then
            with self.write() as tx:
                host = tx.ensure_host(name)
                failure = tx.host_and_failure(name, operation)[1] if host.up else None
                if failure is not None:
                    tx.consume_failure(failure)
        if not host.up:
            raise ConnectionFailed(f"cannot connect to {uri}: host is down", host=uri)
        if failure is not None:
            raise FAILURE_KINDS[failure.kind](f"injected {failure.kind} failure of {operation} on {name}",
                                              host=uri, code=failure.kind)
        return host

    # -- domains ---------------------------------------------------------------------------------

    def add_foreign_domain(self, host: str, name: str, *, vcpus: int = 1, ram_mib: int = 1024, disk_gib: int = 0,
                           running: bool = True) -> DomainInfo:
        """A domain someone else defined on this host (no Confluencia metadata); replaces one of that name."""
        dom = SimDomain(host=host, vm_id=name, vcpus=vcpus, ram_mib=ram_mib, disk_gib=disk_gib,
                        tenant_id=None).running(running)
        with self.write() as tx:
            tx.ensure_host(host)
            tx.delete_domain(host, name)
            tx.insert_domain(dom)
        return dom.info()

    def remove_domain(self, host: str, vm_id: str) -> bool:
        """Remove a domain behind Confluencia's back; False when there was none."""
        with self.write() as tx:
            return tx.delete_domain(host, vm_id)

    def move_domain(self, vm_id: str, source: str, target: str) -> None:
        """Move a domain to another host behind Confluencia's back (no checks, no delay)."""
        with self.write() as tx:
            if tx.domain(source, vm_id) is None:
                raise NotFound(f"domain {vm_id!r} not found on {source}", code="NO_DOMAIN")
            tx.ensure_host(target)
            tx.delete_domain(target, vm_id)
            tx.move_domain(vm_id, source, target)

    def set_ignores_shutdown(self, host: str, vm_id: str, ignores: bool = True) -> None:
        """Make the guest ignore (or honour again) the ACPI shutdown request."""
        with self.write() as tx:
            if not tx.set_ignores_shutdown(host, vm_id, ignores):
                raise NotFound(f"domain {vm_id!r} not found on {host}", code="NO_DOMAIN")

    def domains(self, host: str) -> list[DomainInfo]:
        with self.read() as tx:
            return [d.info() for d in tx.domains(host)]

    def inventory(self) -> dict[str, list[str]]:
        """Every host with the ids of its domains, sorted."""
        with self.read() as tx:
            return tx.inventory()

    # -- delays ----------------------------------------------------------------------------------

    @property
    def delay_scale(self) -> float:
        """Speed of every operation: the store's setting, else ``CONFLUENCIA_SIM_DELAY_SCALE`` (0 = instant)."""
        with self.read() as tx:
            value = tx.setting("delay_scale")
        return float(value) if value is not None else _env_delay_scale()

    def set_delay_scale(self, scale: float | None) -> None:
        """Set the scale for every process on this store; ``None`` goes back to each process's environment."""
        if scale is not None and scale < 0:
            raise ValueError(f"delay_scale must be >= 0, got {scale}")
        with self.write() as tx:
            tx.set_setting("delay_scale", None if scale is None else repr(float(scale)))

    def sleep(self, seconds: float, scale: float | None = None) -> None:
        delay = seconds * (self.delay_scale if scale is None else scale)
        if delay > 0:
            time.sleep(delay)


_handles: dict[str, SimulatedDataCenter] = {}  # path -> handle: connections only, the state is in the file
_handles_lock = threading.Lock()


def open_datacenter(path: str | os.PathLike[str] | None = None) -> SimulatedDataCenter:
    """The data center stored at ``path`` (default: :func:`state_path`), shared with every process using it."""
    resolved = state_path(path)
    with _handles_lock:
        handle = _handles.get(resolved)
        if handle is None:
            handle = _handles[resolved] = SimulatedDataCenter(SimStore(resolved))
        return handle
