"""Guest NICs on the lab's segment bridges through the driver (diskless domains: fast, no guest OS needed).

The definition (bridge interfaces in order, with their MACs), ``NO_BRIDGE`` from create, start and migrate
(never a guest without its network), and a live migration onto a host that names the segment's bridge
differently (its ``bridges`` template): the target's definition names its own bridge.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agents.base import DomainState, NicSpec, VMSpec
from agents.errors import DriverError
from agents.libvirt_lab import Lab
from agents.libvirt_lab_network import PHYSNET
from tests.lab.session import driver_options, host

pytestmark = [pytest.mark.libvirt]


def _nic(n: int, segment: int) -> NicSpec:
    return NicSpec(f"port-{n}", "52:54:00:" + ":".join(f"{b:02x}" for b in os.urandom(3)), PHYSNET, segment)


def _driver(lab: Lab, index: int, **changes: str) -> Any:
    from agents.libvirt_driver import LibvirtDriver

    h = host(lab, index)
    return LibvirtDriver(h.uri, **{**driver_options(h), **changes})


def _interfaces(driver: Any, vm_id: str, *, inactive: bool = False) -> list[ET.Element]:
    import libvirt

    conn = libvirt.open(driver.uri)
    try:
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
        return ET.fromstring(conn.lookupByName(vm_id).XMLDesc(flags)).findall("devices/interface")
    finally:
        conn.close()


def test_each_nic_is_a_virtio_port_of_its_segments_bridge_in_order(lab: Lab, d1: Any,
                                                                    new_spec: Callable[..., VMSpec]) -> None:
    nics = (_nic(0, 2), _nic(1, 1))
    spec = new_spec(nics=nics)
    d1.create(spec)
    assert d1.start(spec.vm_id).state == DomainState.RUNNING
    ifaces = _interfaces(d1, spec.vm_id)
    assert [(i.get("type"), i.find("source").get("bridge"), i.find("mac").get("address"),
             i.find("model").get("type")) for i in ifaces] == [
        ("bridge", lab.network.bridge(2), nics[0].mac, "virtio"),
        ("bridge", lab.network.bridge(1), nics[1].mac, "virtio")]  # fmt: skip
    for iface, segment in zip(ifaces, (2, 1), strict=True):  # the guest's taps are ports of those bridges
        tap = iface.find("target").get("dev")
        assert os.path.basename(os.readlink(f"/sys/class/net/{tap}/master")) == lab.network.bridge(segment)


def test_a_bridge_the_host_lacks_is_no_bridge_from_create_and_start(lab: Lab,
                                                                   new_spec: Callable[..., VMSpec]) -> None:
    elsewhere = _driver(lab, 1, bridges=f"{PHYSNET}={lab.prefix}x{{segment}}")
    spec = new_spec(nics=(_nic(0, 9),))
    missing = f"{lab.prefix}x9"
    with pytest.raises(DriverError) as err:
        elsewhere.create(spec)  # checked on the host before anything is defined
    assert err.value.code == "NO_BRIDGE" and missing in err.value.message and elsewhere.uri in err.value.message
    assert elsewhere.get(spec.vm_id) is None
    with lab.network.extra_bridge(9, allow=False) as bridge:  # exists, but the bridge helper may not use it
        elsewhere.create(spec)
        with pytest.raises(DriverError) as err:
            elsewhere.start(spec.vm_id)  # libvirt's failure, mapped
        assert err.value.code == "NO_BRIDGE" and bridge in err.value.message and "acl" in err.value.message
    with pytest.raises(DriverError) as err:
        elsewhere.start(spec.vm_id)  # gone again: found before libvirt is asked
    assert err.value.code == "NO_BRIDGE" and "does not exist" in err.value.message
    assert elsewhere.get(spec.vm_id).state == DomainState.STOPPED


def test_a_migration_target_without_the_bridge_refuses_and_the_guest_stays(lab: Lab, d1: Any,
                                                                          new_spec: Callable[..., VMSpec]) -> None:
    spec = new_spec(nics=(_nic(0, 1),))
    d1.create(spec)
    d1.start(spec.vm_id)
    target = _driver(lab, 2, bridges=f"{PHYSNET}={lab.prefix}x{{segment}}")
    with pytest.raises(DriverError) as err:
        d1.migrate(spec.vm_id, target, timeout_s=60)
    assert err.value.code == "NO_BRIDGE" and f"{lab.prefix}x1" in err.value.message and target.uri in err.value.message
    assert d1.get(spec.vm_id).state == DomainState.RUNNING and target.get(spec.vm_id) is None


def test_a_live_migration_puts_the_nics_on_the_targets_bridges_of_their_segments(
    lab: Lab, new_spec: Callable[..., VMSpec]
) -> None:
    both = f"lab2={lab.prefix}b{{segment}}"  # a second physnet, named alike on both hosts
    source = _driver(lab, 1, bridges=f"{PHYSNET}={lab.prefix}b{{segment}},{both}")
    nics = (_nic(0, 3), NicSpec("port-1", _nic(1, 4).mac, "lab2", 4))
    spec = new_spec(nics=nics)
    source.create(spec)
    source.start(spec.vm_id)
    with lab.network.extra_bridge(3) as other_name:  # host 2 names segment 3 of physnet tenants differently
        target = _driver(lab, 2, bridges=f"{PHYSNET}={lab.prefix}x{{segment}},{both}")
        result = source.migrate(spec.vm_id, target, timeout_s=120)
        assert not result.already_there and source.get(spec.vm_id) is None
        for inactive in (False, True):  # the running domain and its persistent definition on the target
            ifaces = _interfaces(target, spec.vm_id, inactive=inactive)
            assert [(i.find("source").get("bridge"), i.find("mac").get("address")) for i in ifaces] == [
                (other_name, nics[0].mac), (lab.network.bridge(4), nics[1].mac)]  # fmt: skip
        tap = _interfaces(target, spec.vm_id)[0].find("target").get("dev")
        assert Path(f"/sys/class/net/{tap}/master").resolve().name == other_name
        assert target.create(spec).state == DomainState.RUNNING  # the same NICs there: idempotent
        target.delete(spec.vm_id)  # before its bridge goes
        print(f"\nlive migration with a renamed bridge: {result.duration_s:.1f} s")
