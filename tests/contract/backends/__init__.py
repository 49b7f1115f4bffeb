"""Backends of the driver contract suite: one module per driver kind, each defining ``BACKEND``.

See ``tests/contract/README.md`` for how to add one.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import pytest

from agents.base import HypervisorDriver, ImageRef, VMSpec


@dataclass
class HostPair:
    """Two hosts of one driver kind, plus the backend-specific knobs the contract tests need."""

    a: HypervisorDriver
    b: HypervisorDriver
    # VMSpec for a new VM with the given id, small enough for the backend (tiny guests on the lab).
    spec: Callable[[str], VMSpec]
    # Define a running domain named ``name`` on the host of ``driver`` that Confluencia did not create.
    add_foreign: Callable[[HypervisorDriver, str], None]
    # Remove it again (called at teardown even when the test failed).
    remove_foreign: Callable[[HypervisorDriver, str], None]
    # A driver of the same kind for a host whose daemon/API does not answer.
    unreachable: Callable[[], HypervisorDriver]
    # Make the guest ignore graceful shutdown, so stop() has to force it after timeout_s.
    # None: the backend's guests never react to a graceful shutdown anyway (e.g. libvirt lab guests).
    make_uncooperative: Callable[[HypervisorDriver, str], None] | None
    valid_uris: list[str] = field(default_factory=list)
    invalid_uris: list[str] = field(default_factory=list)
    # Called before each test (e.g. to re-assert settings another test may have changed).
    before_each: Callable[[], None] | None = None
    # A bootable test image the backend's hosts can use for root disks, and the storage pool to put disks
    # in (tests/contract/test_disk_contract.py); None: the backend has no disks (those tests are SKIPPED).
    image: ImageRef | None = None
    pool: str = "default"
    # A physnet both hosts realise and at least two of its segments (tests/contract/test_network_contract.py);
    # None: the backend has no networks (those tests are SKIPPED).
    physnet: str | None = None
    segments: tuple[int, ...] = ()
    # The VM's firewall as the host holds it (any comparable value; None: it has none there). None: the backend
    # cannot show it (the network tests then check only that the calls succeed).
    firewall_of: Callable[[HypervisorDriver, str], object | None] | None = None


@dataclass(frozen=True)
class ContractBackend:
    kind: str  # the registry kind, e.g. "libvirt"
    # Why this backend cannot run here (the test is SKIPPED with this reason), or None.
    missing: Callable[[pytest.Config], str | None]
    # Build the two hosts; entered once per pytest session, exited at the end.
    open: Callable[[pytest.Config], AbstractContextManager[HostPair]]


def discover() -> Iterator[ContractBackend]:
    """Every ``BACKEND`` defined by a module of this package, sorted by kind."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        backend = getattr(module, "BACKEND", None)
        if not isinstance(backend, ContractBackend):
            raise TypeError(f"{module.__name__} must define BACKEND = ContractBackend(...)")
        found.append(backend)
    yield from sorted(found, key=lambda b: b.kind)
