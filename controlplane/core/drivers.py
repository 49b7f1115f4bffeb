"""From database rows to the agents layer: the driver of a host and the spec of a VM (plain data)."""

from __future__ import annotations

from agents import HypervisorDriver, VMSpec, open_driver
from controlplane.models import VM, Host


def driver_for(host: Host) -> HypervisorDriver:
    """The cached driver of ``host`` (no connection is made until a call needs one)."""
    return open_driver(host.driver, host.uri, host.driver_options)


def spec_for(vm: VM) -> VMSpec:
    return VMSpec(vm_id=vm.id, name=vm.name, vcpus=vm.vcpus, ram_mib=vm.ram_mib, disk_gib=vm.disk_gib,
                  tenant_id=vm.tenant_id, image=vm.image)
