"""NICs on network segments and the per-VM firewall: what every driver with networks does (``HostPair.physnet``).

A NIC names a physnet and a segment on it; each host realises them its own way (libvirt: a bridge per segment,
Proxmox: a bridge and a VLAN tag). Creating with NICs is idempotent like every create and compares the NICs;
``set_firewall`` works before the domain exists and replaces what was there, ``clear_firewall`` of nothing is
success; a live migration keeps the NICs on their segments; a physnet the host lacks is a ``DriverError``.
Whether the firewall really filters is proven with real guests in ``tests/integration/libvirt``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from agents.base import DomainState, FirewallRule, FirewallSpec, NicSpec, VMSpec
from agents.errors import AlreadyExists, DriverError
from tests.contract.backends import HostPair

NewId = Callable[[], str]
RULES = FirewallSpec(rules=(FirewallRule("tcp", 22, 22, "192.0.2.0/24"), FirewallRule("icmp")))


@pytest.fixture
def npair(pair: HostPair) -> Iterator[HostPair]:
    """The pair, when its backend has networks; the firewalls of the test's VMs are cleared afterwards."""
    if pair.physnet is None:
        pytest.skip(f"{pair.a.kind} contract backend has no networks")
    yield pair


@pytest.fixture
def fw_ids(npair: HostPair) -> Iterator[list[str]]:
    """VM ids whose firewall is cleared from both hosts after the test."""
    ids: list[str] = []
    yield ids
    for vm_id in ids:
        for driver in (npair.a, npair.b):
            with contextlib.suppress(DriverError):
                driver.clear_firewall(vm_id)


def _mac() -> str:
    return "52:54:00:" + ":".join(f"{b:02x}" for b in os.urandom(3))


def nic(pair: HostPair, vm_id: str, n: int = 0, *, segment: int | None = None) -> NicSpec:
    assert pair.physnet is not None
    seg = pair.segments[n % len(pair.segments)] if segment is None else segment
    return NicSpec(port_id=f"{vm_id}-p{n}", mac=_mac(), physnet=pair.physnet, segment=seg,
                   addresses=(f"198.51.100.{10 + n}/24",))  # fmt: skip


def with_nics(pair: HostPair, vm_id: str, count: int = 2) -> VMSpec:
    return replace(pair.spec(vm_id), nics=tuple(nic(pair, vm_id, n) for n in range(count)), firewall=RULES)


def test_create_with_nics_is_idempotent_and_compares_them(npair: HostPair, new_vm_id: NewId) -> None:
    spec = with_nics(npair, new_vm_id())
    first = npair.a.create(spec)
    assert first.state == DomainState.STOPPED
    assert npair.a.create(spec).native_id == first.native_id  # the same NICs: success
    other_segment = replace(spec.nics[0], segment=npair.segments[-1] if spec.nics[0].segment != npair.segments[-1]
                            else npair.segments[0])  # fmt: skip
    for changed in ((other_segment, spec.nics[1]), (replace(spec.nics[0], mac=_mac()), spec.nics[1]),
                    spec.nics[:1], spec.nics[::-1]):  # fmt: skip
        with pytest.raises(AlreadyExists):
            npair.a.create(replace(spec, nics=changed))
    assert npair.a.start(spec.vm_id).state == DomainState.RUNNING  # it starts with its NICs


def test_set_firewall_before_the_domain_exists_is_idempotent_and_clear_too(
    npair: HostPair, new_vm_id: NewId, fw_ids: list[str]
) -> None:
    vm_id = new_vm_id()
    fw_ids.append(vm_id)
    nics = with_nics(npair, vm_id).nics
    npair.a.set_firewall(vm_id, nics, RULES)
    first = npair.firewall_of(npair.a, vm_id) if npair.firewall_of else None
    npair.a.set_firewall(vm_id, nics, RULES)  # the same rules already in place: success
    if npair.firewall_of is not None:
        assert first is not None and npair.firewall_of(npair.a, vm_id) == first
        assert npair.firewall_of(npair.b, vm_id) is None  # per host
        npair.a.set_firewall(vm_id, nics, FirewallSpec(rules=RULES.rules[:1]))  # replaced, not added
        assert npair.firewall_of(npair.a, vm_id) not in (None, first)
    npair.a.clear_firewall(vm_id)
    npair.a.clear_firewall(vm_id)  # nothing there: success
    if npair.firewall_of is not None:
        assert npair.firewall_of(npair.a, vm_id) is None
    npair.b.clear_firewall(vm_id)  # never set there: success


def test_a_migration_keeps_the_nics_and_the_firewall_moves_with_the_control_plane(
    npair: HostPair, new_vm_id: NewId, fw_ids: list[str]
) -> None:
    spec = with_nics(npair, new_vm_id())
    fw_ids.append(spec.vm_id)
    npair.a.create(spec)
    assert spec.firewall is not None
    npair.a.set_firewall(spec.vm_id, spec.nics, spec.firewall)  # what the control plane does: before start
    npair.a.start(spec.vm_id)
    npair.b.set_firewall(spec.vm_id, spec.nics, spec.firewall)  # ... on the target before a migration
    npair.a.migrate(spec.vm_id, npair.b, timeout_s=120)
    npair.a.clear_firewall(spec.vm_id)  # ... and off the source after it
    info = npair.b.get(spec.vm_id)
    assert info is not None and info.state == DomainState.RUNNING and npair.a.get(spec.vm_id) is None
    assert npair.b.create(spec).native_id == info.native_id  # the same NICs on the same segments there
    with pytest.raises(AlreadyExists):
        npair.b.create(replace(spec, nics=spec.nics[:1]))
    if npair.firewall_of is not None:
        assert npair.firewall_of(npair.b, spec.vm_id) is not None
        assert npair.firewall_of(npair.a, spec.vm_id) is None


def test_an_unknown_physnet_is_a_driver_error(npair: HostPair, new_vm_id: NewId) -> None:
    vm_id = new_vm_id()
    spec = replace(npair.spec(vm_id), nics=(replace(nic(npair, vm_id), physnet="no-such-physnet"),))
    with pytest.raises(DriverError) as err:
        npair.a.create(spec)
        npair.a.start(vm_id)  # a driver may find out only when it starts the guest
    assert "no-such-physnet" in str(err.value)
    info = npair.a.get(vm_id)
    assert info is None or info.state != DomainState.RUNNING  # never a guest without its network
