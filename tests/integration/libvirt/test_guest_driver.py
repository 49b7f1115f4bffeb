"""Real guests made by the libvirt driver: root volume, seed, live disks, resize, both kinds of live migration.

Two guests of the test image (``tests/lab/guest_image.py``) are created through the driver once for this
module and booted together: ``shared`` has its root disk in the lab's shared pool, ``local`` in host 1's own
pool. The tests run in file order on them (each says which guest it moves); what the guests report comes
from their serial console (``tests/lab/guest_console.py``).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from agents.base import CloudInit, DiskSpec, DomainState, NetConfig, VMSpec
from agents.errors import DriverError
from agents.libvirt_lab import Lab
from agents.libvirt_lab_storage import LOCAL_POOL, SHARED_POOL
from tests.lab.guest_console import GuestReport, SerialLog, ssh_public_key
from tests.lab.guest_image import guest_image_for
from tests.lab.session import driver_options, host

pytestmark = [pytest.mark.libvirt, pytest.mark.slow]

GIB = 1024**3
BOOT_TIMEOUT_S = 90.0  # ready in about 10 s under TCG; two guests boot at once on a shared machine
WAIT_S = 45.0  # the guest re-scans its disks every 3 s


@dataclass
class Guest:
    vm_id: str
    pool: str
    drivers: tuple[Any, Any]  # LibvirtDriver of lab hosts 1 and 2
    hostname: str
    address: str
    fingerprint: str
    on: int = 0  # index of the host it runs on
    started_at: float = 0.0
    data: list[DiskSpec] | None = None

    @property
    def driver(self) -> Any:
        return self.drivers[self.on]

    @property
    def other(self) -> Any:
        return self.drivers[1 - self.on]

    def log(self) -> SerialLog:
        """The console log on the host it runs on (a shared pool: one file for both hosts)."""
        return SerialLog(os.path.join(self.driver.opts.storage.dir_of(self.pool), f"{self.vm_id}-console.log"))

    def running(self) -> bool:
        info = self.driver.get(self.vm_id)
        return info is not None and info.state == DomainState.RUNNING

    def wait(self, condition: Any, what: str, timeout_s: float = WAIT_S) -> GuestReport:
        return self.log().wait(condition, timeout_s=timeout_s, what=what, alive=self.running)

    def xml(self, *, inactive: bool = False) -> ET.Element:
        import libvirt

        conn = libvirt.open(self.driver.uri)
        try:
            flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
            return ET.fromstring(conn.lookupByName(self.vm_id).XMLDesc(flags))
        finally:
            conn.close()


def _spec(vm_id: str, pool: str, image: Any, hostname: str, address: str, key: str) -> VMSpec:
    root = DiskSpec(volume_id=f"{vm_id}-root", size_gib=1, pool=pool, image=image)
    seed = CloudInit(hostname=hostname, instance_id=vm_id, ssh_keys=(key,),
                     networks=(NetConfig(address=address, gateway="192.0.2.1"),))  # fmt: skip
    return VMSpec(vm_id=vm_id, name=hostname, vcpus=1, ram_mib=128, disk_gib=1, tenant_id="tenant-g",
                  disks=(root,), cloud_init=seed)  # fmt: skip


@pytest.fixture(scope="module")
def guests(lab: Lab, request: pytest.FixtureRequest) -> Iterator[dict[str, Guest]]:
    from agents.libvirt_driver import LibvirtDriver

    image = guest_image_for(request.config).image_ref()
    drivers = tuple(LibvirtDriver(h.uri, **driver_options(h)) for h in (host(lab, 1), host(lab, 2)))
    made: dict[str, Guest] = {}
    try:
        for n, (label, pool) in enumerate((("shared", SHARED_POOL), ("local", LOCAL_POOL)), start=10):
            vm_id = f"gd-{label}-{uuid.uuid4().hex[:8]}"
            key, fingerprint = ssh_public_key(f"{label}@confluencia-test")
            guest = Guest(vm_id, pool, drivers, f"guest-{label}", f"192.0.2.{n}/24", fingerprint, data=[])
            drivers[0].create(_spec(vm_id, pool, image, guest.hostname, guest.address, key))
            made[label] = guest
        for guest in made.values():  # both boot at once: about 10 s instead of 20
            guest.started_at = time.monotonic()
            drivers[0].start(guest.vm_id)
        yield made
    finally:
        for guest in made.values():
            for drv in drivers:
                with contextlib.suppress(DriverError):
                    drv.delete(guest.vm_id)
            for disk in guest.data or []:
                for drv in drivers:
                    with contextlib.suppress(DriverError):
                        drv.delete_disk(disk)


def test_guests_boot_from_their_root_volume_and_apply_the_seed(guests: dict[str, Guest]) -> None:
    for label, g in guests.items():
        report = g.log().wait_ready(timeout_s=BOOT_TIMEOUT_S, alive=g.running)
        boot_s = time.monotonic() - g.started_at
        assert report.hostname == g.hostname
        assert report.first("instance-id") == g.vm_id
        assert report.ssh_keys == [(g.fingerprint, f"{label}@confluencia-test")]  # from meta-data and user-data
        assert (report.first("network"), report.address, report.last("gateway")) == ("static", g.address,
                                                                                      "192.0.2.1")  # fmt: skip
        assert report.disks["vda"] == 1 * GIB and "sr0" in report.disks
        # its own volume: vda is <vm>-root.qcow2 of its pool, an overlay of the image volume
        vda = g.xml().find("devices/disk[@device='disk']/source")
        root_path = os.path.join(g.driver.opts.storage.dir_of(g.pool), f"{g.vm_id}-root.qcow2")
        assert vda is not None and vda.get("file") == root_path
        backing = g.xml().find("devices/disk[@device='disk']/backingStore/source")
        assert backing is not None and os.path.dirname(backing.get("file", "")) == g.driver.opts.storage.image_dir
        assert os.stat(root_path).st_mode & 0o777 == 0o660
        print(f"\n{label}: ready {boot_s:.1f} s after start")


def test_a_data_volume_attached_to_the_running_guest_shows_up_and_grows(guests: dict[str, Guest]) -> None:
    g = guests["shared"]
    g.log().wait_ready(timeout_s=BOOT_TIMEOUT_S, alive=g.running)
    vol = DiskSpec(volume_id=f"{g.vm_id}-data", size_gib=1, pool=SHARED_POOL)
    assert g.data is not None
    g.data.append(vol)
    info = g.driver.attach_disk(g.vm_id, vol)
    assert info.device == "vdb"
    g.wait(lambda r: r.disks.get("vdb") == 1 * GIB, "the hot-plugged vdb")
    assert g.driver.grow_disk(g.vm_id, DiskSpec(vol.volume_id, 2, SHARED_POOL)).size_gib == 2
    g.wait(lambda r: r.disks.get("vdb") == 2 * GIB, "vdb grown to 2 GiB")
    g.driver.detach_disk(g.vm_id, vol)
    g.wait(lambda r: "vdb" not in r.disks and "vda" in r.disks, "vdb gone")
    g.driver.delete_disk(vol)
    assert g.driver.get(g.vm_id).volumes == (f"{g.vm_id}-root",)


def _ticks_go_on(g: Guest, after: int) -> GuestReport:
    return g.wait(lambda r: r.last_tick >= after + 3, f"3 ticks after tick {after}")


def test_live_migration_with_the_root_disk_on_the_shared_pool_keeps_the_guest_running(
    guests: dict[str, Guest],
) -> None:
    g = guests["shared"]
    root_path = os.path.join(g.driver.opts.storage.dir_of(SHARED_POOL), f"{g.vm_id}-root.qcow2")
    before = g.log().wait_ready(timeout_s=BOOT_TIMEOUT_S, alive=g.running).last_tick
    result = g.driver.migrate(g.vm_id, g.other, timeout_s=120)
    g.on = 1
    assert not result.already_there
    assert g.drivers[0].get(g.vm_id) is None
    report = _ticks_go_on(g, before)
    assert report.ticks == list(range(1, report.last_tick + 1)), "one tick counter, never restarted"
    assert len(report.all("kernel")) == 1  # booted once
    vda = g.xml().find("devices/disk[@device='disk']/source")
    assert vda is not None and vda.get("file") == root_path  # the disk stayed in place
    print(f"\nshared-pool live migration: {result.duration_s:.1f} s")


def test_copy_storage_migration_moves_the_local_disks_and_keeps_the_guest_running(
    guests: dict[str, Guest],
) -> None:
    g = guests["local"]
    g.log().wait_ready(timeout_s=BOOT_TIMEOUT_S, alive=g.running)
    vol = DiskSpec(volume_id=f"{g.vm_id}-data", size_gib=1, pool=LOCAL_POOL)
    assert g.data is not None
    g.data.append(vol)
    g.driver.attach_disk(g.vm_id, vol)
    before = g.wait(lambda r: r.disks.get("vdb") == 1 * GIB, "the hot-plugged vdb").last_tick
    src_dir, dst_dir = (d.opts.storage.dir_of(LOCAL_POOL) for d in g.drivers)
    assert src_dir != dst_dir
    names = [f"{g.vm_id}-root.qcow2", f"{vol.volume_id}.qcow2", f"{g.vm_id}-seed.iso", f"{g.vm_id}-console.log"]
    result = g.driver.migrate(g.vm_id, g.other, timeout_s=180)
    g.on = 1
    assert g.drivers[0].get(g.vm_id) is None
    report = _ticks_go_on(g, before)  # the target's own console log: it starts where the source's ended
    assert report.first("kernel") is None and report.ticks[0] > before, "the guest went on, no new boot"
    assert g.driver.get(g.vm_id).volumes == (f"{g.vm_id}-root", vol.volume_id)
    assert [os.path.exists(os.path.join(dst_dir, n)) for n in names] == [True] * 4
    assert [os.path.exists(os.path.join(src_dir, n)) for n in names] == [False] * 4  # the source's removed
    for xml in (g.xml(), g.xml(inactive=True)):  # the running domain and its persistent definition
        assert {s.get("file") for s in xml.findall("devices/disk/source")} == {
            os.path.join(dst_dir, n) for n in names[:3]}
        assert xml.find("devices/serial/source").get("path") == os.path.join(dst_dir, names[3])
    print(f"\ncopy-storage live migration (overlay + 1 GiB data volume): {result.duration_s:.1f} s")


def test_resize_is_seen_by_the_guest_after_a_restart(guests: dict[str, Guest]) -> None:
    g = guests["local"]
    guests["local"].wait(lambda r: r.last_tick > 0, "the guest up")
    boots = len(g.log().report().all("ready"))
    info = g.driver.resize(g.vm_id, 2, 192)
    assert (info.state, info.vcpus) == (DomainState.RUNNING, 1)  # the running guest keeps its size
    assert g.driver.stop(g.vm_id, timeout_s=30).state == DomainState.STOPPED
    stopped = g.driver.get(g.vm_id)
    assert (stopped.vcpus, stopped.ram_mib) == (2, 192)
    g.driver.start(g.vm_id)
    report = g.wait(lambda r: len(r.all("ready")) > boots, "ready after the restart", timeout_s=BOOT_TIMEOUT_S)
    assert report.last("cpus") == "2"
    assert int(report.last("mem-kib") or 0) > 128 * 1024  # more than all the RAM it had (the kernel keeps some)
    assert report.disks.get("vdb") == 1 * GIB  # the data volume stayed in the definition


def test_a_stopped_guest_moves_with_its_local_disks_and_boots_there(guests: dict[str, Guest]) -> None:
    g = guests["local"]
    assert g.driver.stop(g.vm_id, timeout_s=30).state == DomainState.STOPPED
    result = g.driver.migrate(g.vm_id, g.other, timeout_s=120)  # offline: the files are copied with streams
    g.on = 1 - g.on
    assert g.other.get(g.vm_id) is None
    g.driver.start(g.vm_id)
    report = g.log().wait_ready(timeout_s=BOOT_TIMEOUT_S, alive=g.running)  # a fresh console log on this host
    assert (report.hostname, report.last("cpus")) == (g.hostname, "2")  # the resized definition moved
    assert report.disks.get("vda") == 1 * GIB and report.disks.get("vdb") == 1 * GIB
    print(f"\ncold move of a stopped guest with its local disks: {result.duration_s:.1f} s")
