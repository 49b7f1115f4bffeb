"""Contract backend: two hosts of the simulated data center (the session's store file, CONFLUENCIA_SIM_STATE)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from agents import simulated_networks
from agents.base import HypervisorDriver, ImageRef, VMSpec
from agents.simulated import SimulatedDriver, open_datacenter
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
    dc = open_datacenter()
    saved_scale = dc.delay_scale

    def before_each() -> None:
        dc.set_delay_scale(0.0)  # other tests may reset the data center or change the scale
        for d in (a, b):
            dc.add_host(d.hostname, vcpus=8, ram_mib=4096)
            dc.set_up(d.hostname, True)

    def unreachable() -> HypervisorDriver:
        name = f"contract-down-{tag}"
        dc.set_up(name, False)
        return SimulatedDriver(f"sim://{name}")

    def uncooperative(driver: HypervisorDriver, vm_id: str) -> None:
        dc.set_ignores_shutdown(_host_of(driver), vm_id)

    def firewall_of(driver: HypervisorDriver, vm_id: str) -> object | None:
        with dc.read() as tx:  # the store's record of what a real host would apply
            return simulated_networks.firewall_of(tx, _host_of(driver), vm_id)

    try:
        yield HostPair(
            a=a,
            b=b,
            spec=_spec,
            add_foreign=lambda d, name: dc.add_foreign_domain(_host_of(d), name, ram_mib=64) and None,
            remove_foreign=lambda d, name: dc.remove_domain(_host_of(d), name) and None,
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
            image=ImageRef(image_id="sim-image", format="qcow2", virtual_size_bytes=1 << 30,
                           checksum="sha256:" + "0" * 64, path="/nonexistent/sim-image.qcow2"),
            pool="default",
            physnet="tenants",  # every simulated host has it (driver option physnets), with every VLAN
            segments=(101, 102, 103),
            firewall_of=firewall_of,
        )
    finally:
        dc.set_delay_scale(saved_scale)
        dc.remove_hosts(n for n in dc.host_names() if n.endswith(tag))


BACKEND = ContractBackend(kind="simulated", missing=lambda config: None, open=_open)
