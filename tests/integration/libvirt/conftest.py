"""Fixtures for tests against the libvirt lab (real session daemons, real TCG guests).

The lab is shared with the contract suite (``tests.lab.session``); tests here may kill and restart lab
host 3, never hosts 1 and 2.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator

import pytest

from agents.base import VMSpec
from agents.libvirt_lab import Lab


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> Lab:
    from tests.lab.session import lab_for

    return lab_for(request.config)


def _driver(lab: Lab, index: int):  # -> LibvirtDriver (imported lazily: libvirt-python is optional)
    from agents.libvirt_driver import LibvirtDriver
    from tests.lab.session import driver_options, host

    h = host(lab, index)
    return LibvirtDriver(h.uri, **driver_options(h))


@pytest.fixture
def d1(lab: Lab):
    return _driver(lab, 1)


@pytest.fixture
def d2(lab: Lab):
    return _driver(lab, 2)


@pytest.fixture
def d3(lab: Lab) -> Iterator[object]:
    """Host 3, whose daemon tests may kill: it is running again after the test, its breaker closed."""
    from agents.registry import forget

    drv = _driver(lab, 3)
    yield drv
    lab.restart_host(lab.hosts()[2].name)
    forget("libvirt", drv.uri)  # the next test must not find host 3 failing fast after this one's faults


@pytest.fixture
def new_spec(lab: Lab) -> Iterator[Callable[..., VMSpec]]:
    """Tiny specs with fresh ids; their domains are deleted from every lab host after the test."""
    made: list[str] = []

    def make(**changes: object) -> VMSpec:
        made.append(f"it-{uuid.uuid4().hex[:12]}")
        fields: dict[str, object] = {
            "vm_id": made[-1],
            "name": "integration",
            "vcpus": 1,
            "ram_mib": 32,
            "disk_gib": 3,
            "tenant_id": "tenant-i",
            **changes,
        }
        return VMSpec(**fields)  # type: ignore[arg-type]

    yield make
    for index in (1, 2, 3):
        drv = _driver(lab, index)
        for vm_id in made:
            with contextlib.suppress(Exception):
                drv.delete(vm_id)
