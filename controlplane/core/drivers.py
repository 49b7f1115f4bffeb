"""From database rows to the agents layer: the driver of a host and the spec of a VM (plain data).

Secret driver options are stored encrypted (:mod:`controlplane.core.secrets`); this is the one place that
decrypts them, to build a driver.
"""

from __future__ import annotations

from typing import cast

from agents import DriverError, HypervisorDriver, VMSpec, open_driver
from controlplane.core.io_guard import guarded
from controlplane.core.secrets import DataKeyError, reveal_options
from controlplane.models import VM, Host


def plain_options(host: Host) -> dict[str, str] | None:
    """The host's driver options with secrets decrypted: only to build (or validate) its driver."""
    return reveal_options(host.driver_options, host.name)


def driver_for(host: Host) -> HypervisorDriver:
    """The cached driver of ``host`` (no connection is made until a call needs one).

    A secret option that cannot be decrypted (no key, wrong key) is a non-transient ``DriverError`` with
    code ``DATA_KEY``, so callers treat it like any host whose driver cannot work."""
    try:
        options = plain_options(host)
    except DataKeyError as exc:
        raise DriverError(exc.detail.en, host=host.name, code="DATA_KEY") from None
    return cast(HypervisorDriver, guarded(open_driver(host.driver, host.uri, options)))


def spec_for(vm: VM) -> VMSpec:
    return VMSpec(vm_id=vm.id, name=vm.name, vcpus=vm.vcpus, ram_mib=vm.ram_mib, disk_gib=vm.disk_gib,
                  tenant_id=vm.tenant_id, image=vm.image)
