"""Disks, seeds, size and console: what every driver with disks does (``HostPair.image`` set).

Root disks are made from the backend's test image, data volumes are created empty by ``attach_disk``;
every call is idempotent with respect to the host's real state, like the rest of the driver protocol.
"""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from agents.base import CloudInit, DiskSpec, DomainState, NetConfig, VMSpec
from agents.errors import DriverError, InvalidState
from tests.contract.backends import HostPair

NewId = Callable[[], str]


@pytest.fixture
def dpair(pair: HostPair) -> HostPair:
    if pair.image is None:
        pytest.skip(f"{pair.a.kind} contract backend has no disks")
    return pair


@pytest.fixture
def volumes(dpair: HostPair) -> Iterator[Callable[[int], DiskSpec]]:
    """Fresh data volumes; each is detached and deleted after the test (from either host)."""
    made: list[DiskSpec] = []

    def make(size_gib: int = 1) -> DiskSpec:
        made.append(DiskSpec(volume_id=f"ctv-{uuid.uuid4().hex[:10]}", size_gib=size_gib, pool=dpair.pool))
        return made[-1]

    yield make
    for disk in made:
        for driver in (dpair.a, dpair.b):
            with contextlib.suppress(DriverError):
                driver.delete_disk(disk)


def booted_spec(pair: HostPair, vm_id: str, *, disk_gib: int = 1) -> VMSpec:
    base = pair.spec(vm_id)
    root = DiskSpec(volume_id=f"{vm_id}-root", size_gib=disk_gib, pool=pair.pool, image=pair.image)
    seed = CloudInit(hostname=f"h-{vm_id[-6:]}", instance_id=vm_id, ssh_keys=("ssh-ed25519 AAAAC3Nza test@ct",),
                     networks=(NetConfig(address="192.0.2.10/24", gateway="192.0.2.1"),))
    return VMSpec(vm_id=vm_id, name=base.name, vcpus=base.vcpus, ram_mib=max(base.ram_mib, 128),
                  disk_gib=disk_gib, tenant_id=base.tenant_id, disks=(root,), cloud_init=seed)


def test_create_with_a_root_disk_and_seed_is_idempotent(dpair: HostPair, new_vm_id: NewId):
    spec = booted_spec(dpair, new_vm_id())
    first = dpair.a.create(spec)
    assert first.volumes == (spec.disks[0].volume_id,)
    again = dpair.a.create(spec)
    assert (again.native_id, again.volumes) == (first.native_id, first.volumes)
    assert dpair.a.start(spec.vm_id).state == DomainState.RUNNING


def test_attach_detach_grow_and_delete_a_data_volume(dpair: HostPair, new_vm_id: NewId, volumes):
    spec = booted_spec(dpair, new_vm_id())
    dpair.a.create(spec)
    dpair.a.start(spec.vm_id)
    vol = volumes(1)
    attached = dpair.a.attach_disk(spec.vm_id, vol)
    assert (attached.volume_id, attached.attached_to, attached.size_gib) == (vol.volume_id, spec.vm_id, 1)
    assert attached.device
    again = dpair.a.attach_disk(spec.vm_id, vol)
    assert (again.device, again.native_id) == (attached.device, attached.native_id)
    info = dpair.a.get(spec.vm_id)
    assert info is not None and info.volumes == (spec.disks[0].volume_id, vol.volume_id)

    known = DiskSpec(vol.volume_id, 2, vol.pool, native_id=attached.native_id)
    assert dpair.a.grow_disk(spec.vm_id, known).size_gib == 2
    smaller = DiskSpec(vol.volume_id, 1, vol.pool, native_id=attached.native_id)
    assert dpair.a.grow_disk(spec.vm_id, smaller).size_gib == 2  # never shrinks

    with pytest.raises(InvalidState):
        dpair.a.delete_disk(known)  # still attached
    dpair.a.detach_disk(spec.vm_id, known)
    dpair.a.detach_disk(spec.vm_id, known)  # not attached any more: success
    info = dpair.a.get(spec.vm_id)
    assert info is not None and info.volumes == (spec.disks[0].volume_id,)
    dpair.a.delete_disk(known)
    dpair.a.delete_disk(known)  # gone: success


def test_the_root_disk_cannot_be_detached(dpair: HostPair, new_vm_id: NewId):
    spec = booted_spec(dpair, new_vm_id())
    dpair.a.create(spec)
    with pytest.raises(InvalidState):
        dpair.a.detach_disk(spec.vm_id, spec.disks[0])


def test_deleting_the_vm_keeps_its_detached_data_volume(dpair: HostPair, new_vm_id: NewId, volumes):
    first, second = booted_spec(dpair, new_vm_id()), booted_spec(dpair, new_vm_id())
    dpair.a.create(first)
    vol = volumes(1)
    attached = dpair.a.attach_disk(first.vm_id, vol)
    known = DiskSpec(vol.volume_id, 1, vol.pool, native_id=attached.native_id)
    dpair.a.detach_disk(first.vm_id, known)
    dpair.a.delete(first.vm_id)
    assert dpair.a.get(first.vm_id) is None
    dpair.a.create(second)
    moved = dpair.a.attach_disk(second.vm_id, known)
    assert moved.attached_to == second.vm_id and moved.size_gib == 1


def test_resize_changes_the_definition(dpair: HostPair, new_vm_id: NewId):
    spec = booted_spec(dpair, new_vm_id())
    dpair.a.create(spec)
    bigger = dpair.a.resize(spec.vm_id, spec.vcpus + 1, spec.ram_mib + 64)
    assert (bigger.vcpus, bigger.ram_mib) == (spec.vcpus + 1, spec.ram_mib + 64)
    same = dpair.a.resize(spec.vm_id, spec.vcpus + 1, spec.ram_mib + 64)
    assert (same.vcpus, same.ram_mib) == (bigger.vcpus, bigger.ram_mib)


def _rfb_greeting(host: str, port: int, timeout_s: float = 10.0) -> bytes:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                s.settimeout(5)
                return s.recv(12)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # the guest's VNC server opens a moment after the domain starts


def test_console_of_a_running_guest_speaks_rfb(dpair: HostPair, new_vm_id: NewId):
    spec = booted_spec(dpair, new_vm_id())
    dpair.a.create(spec)
    with pytest.raises(InvalidState):
        dpair.a.console(spec.vm_id)  # not running
    dpair.a.start(spec.vm_id)
    where = dpair.a.console(spec.vm_id)
    assert where.port > 0
    assert _rfb_greeting(where.host, where.port) == b"RFB 003.008\n"


def test_migration_keeps_the_disks(dpair: HostPair, new_vm_id: NewId, volumes):
    spec = booted_spec(dpair, new_vm_id())
    dpair.a.create(spec)
    dpair.a.start(spec.vm_id)
    vol = volumes(1)
    dpair.a.attach_disk(spec.vm_id, vol)
    dpair.a.migrate(spec.vm_id, dpair.b, timeout_s=120)
    info = dpair.b.get(spec.vm_id)
    assert info is not None and info.state == DomainState.RUNNING
    assert info.volumes == (spec.disks[0].volume_id, vol.volume_id)
    assert dpair.a.get(spec.vm_id) is None
