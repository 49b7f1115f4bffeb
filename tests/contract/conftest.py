"""The driver contract suite runs every test once per backend in ``tests/contract/backends/``.

A backend whose requirements are missing (``BACKEND.missing(config)`` returns a reason) makes each of
its tests SKIPPED with that reason. See README.md in this directory for adding a backend.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator

import pytest

from agents.registry import driver_class
from tests.contract.backends import ContractBackend, HostPair, discover

BACKENDS: dict[str, ContractBackend] = {b.kind: b for b in discover()}


@pytest.fixture(scope="session", params=sorted(BACKENDS))
def host_pair(request: pytest.FixtureRequest) -> Iterator[HostPair]:
    backend = BACKENDS[request.param]
    reason = backend.missing(request.config)
    if reason:
        pytest.skip(f"{backend.kind} contract backend skipped: {reason}")
    with backend.open(request.config) as pair:
        yield pair


@pytest.fixture
def pair(host_pair: HostPair, request: pytest.FixtureRequest) -> HostPair:
    if host_pair.before_each is not None:
        host_pair.before_each()
    return host_pair


@pytest.fixture
def new_vm_id(pair: HostPair) -> Iterator[Callable[[], str]]:
    """Fresh VM ids; every domain they name is deleted from both hosts after the test."""
    made: list[str] = []

    def make() -> str:
        made.append(f"ct-{uuid.uuid4().hex[:12]}")
        return made[-1]

    yield make
    for vm_id in made:
        for driver in (pair.a, pair.b):
            with contextlib.suppress(Exception):
                driver.delete(vm_id)


@pytest.fixture
def foreign(pair: HostPair) -> Iterator[Callable[[], str]]:
    """Define a domain on host a that Confluencia did not create; removed after the test."""
    made: list[str] = []

    def make() -> str:
        made.append(f"foreign-{uuid.uuid4().hex[:8]}")
        pair.add_foreign(pair.a, made[-1])
        return made[-1]

    yield make
    for name in made:
        pair.remove_foreign(pair.a, name)


def driver_cls(pair: HostPair) -> type:
    cls: type = driver_class(pair.a.kind)
    return cls


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "[libvirt" in item.nodeid and "tests/contract/" in item.nodeid:
            item.add_marker(pytest.mark.libvirt)
