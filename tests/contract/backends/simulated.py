"""Contract backend: two hosts of the in-memory simulated data center."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from agents.base import HypervisorDriver, VMSpec
from agents.simulated import DATACENTER, SimulatedDriver
from tests.contract.backends import ContractBackend, HostPair


def _spec(vm_id: str) -> VMSpec:
    return VMSpec(vm_id=vm_id, name=f"contract {vm_id}", vcpus=1, ram_mib=256, disk_gib=1, tenant_id="tenant-c")


def _host_of(driver: HypervisorDriver) -> str:
    assert isinstance(driver, SimulatedDriver)
    return driver.hostname


@contextmanager
def _open(config: pytest.Config) -> Iterator[HostPair]:
    tag = uuid.uuid4().hex[:6]
    a = SimulatedDriver(f"sim://contract-a-{tag}?vcpus=8&ram_mib=4096")
    b = SimulatedDriver(f"sim://contract-b-{tag}?vcpus=8&ram_mib=4096")
    saved_scale = DATACENTER.delay_scale

    def before_each() -> None:
        DATACENTER.delay_scale = 0.0  # other tests may reset the data center or change the scale
        for d in (a, b):
            DATACENTER.add_host(d.hostname, vcpus=8, ram_mib=4096).up = True

    def unreachable() -> HypervisorDriver:
        name = f"contract-down-{tag}"
        DATACENTER.host(name).up = False
        return SimulatedDriver(f"sim://{name}")

    def uncooperative(driver: HypervisorDriver, vm_id: str) -> None:
        DATACENTER.host(_host_of(driver)).domains[vm_id].ignores_shutdown = True

    try:
        yield HostPair(
            a=a,
            b=b,
            spec=_spec,
            add_foreign=lambda d, name: DATACENTER.host(_host_of(d)).add_foreign_domain(name, ram_mib=64),
            remove_foreign=lambda d, name: DATACENTER.host(_host_of(d)).domains.pop(name, None) and None,
            unreachable=unreachable,
            make_uncooperative=uncooperative,
            valid_uris=["sim://h1", "sim://rack1-h07?vcpus=64&ram_mib=262144&disk_gib=4000"],
            invalid_uris=[
                "",
                "garbage",
                "sim://",
                "simulated://h1",
                "sim://h1/path",
                "sim://h1?vcpus=-1",
                "sim://h1?colour=red",
            ],
            before_each=before_each,
        )
    finally:
        DATACENTER.delay_scale = saved_scale
        with DATACENTER.lock:
            for name in [n for n in DATACENTER.hosts if n.endswith(tag)]:
                DATACENTER.hosts.pop(name)


BACKEND = ContractBackend(kind="simulated", missing=lambda config: None, open=_open)
