"""Real guests on network segments: reachability, isolation, the per-VM firewall and a live migration.

Three guests of the test image (``tests/lab/guest_image.py``) are created through the driver once for this
module and booted together, each with one NIC on a lab bridge and a static address from its seed:

- ``a`` on lab host 1, segment 1, 192.0.2.21;  ``b`` on lab host 2, segment 1, 192.0.2.22;
- ``c`` on lab host 1, segment 2, 192.0.2.23 (the same subnet: only the segment keeps it from ``a``).

Each guest probes its peers in rounds from its seed's ``/etc/confluencia/probes`` (ping and TCP echo on port 7)
and reports every result on its console (``probe=ROUND TARGET ok|fail``), so a test changes something and then
reads the results of rounds that started afterwards. The tests run in file order on the same guests.
A TCP probe waits 1 s for its connection, so a round takes one to three seconds.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from agents.base import CloudInit, DiskSpec, DomainState, FirewallRule, FirewallSpec, NetConfig, NicSpec, VMSpec
from agents.errors import DriverError
from agents.libvirt_lab import Lab
from agents.libvirt_lab_network import PHYSNET
from agents.libvirt_lab_storage import SHARED_POOL
from tests.lab.guest_console import GuestReport, SerialLog
from tests.lab.guest_image import guest_image_for
from tests.lab.session import driver_options, host

pytestmark = [pytest.mark.libvirt, pytest.mark.slow]

BOOT_TIMEOUT_S = 120.0  # three TCG guests boot at once on two cores
WAIT_S = 60.0  # a round of probes takes a few seconds (a dropped TCP connect waits 2 s)
DENY = FirewallSpec()
ADDR = {"a": "192.0.2.21", "b": "192.0.2.22", "c": "192.0.2.23"}
PLACE = {"a": (0, 1), "b": (1, 1), "c": (0, 2)}  # guest -> (lab host index - 1, segment)
PROBES = {"a": ("ping b", "tcp b 7"), "b": ("ping a", "tcp a 7"), "c": ("ping a", "tcp a 7")}


@dataclass
class Guest:
    label: str
    vm_id: str
    nic: NicSpec
    drivers: tuple[Any, Any]
    on: int  # index into drivers

    @property
    def driver(self) -> Any:
        return self.drivers[self.on]

    def log(self) -> SerialLog:
        return SerialLog(os.path.join(self.driver.opts.storage.dir_of(SHARED_POOL), f"{self.vm_id}-console.log"))

    def running(self) -> bool:
        info = self.driver.get(self.vm_id)
        return info is not None and info.state == DomainState.RUNNING

    def report(self) -> GuestReport:
        return self.log().report()

    def xml(self) -> ET.Element:
        import libvirt

        conn = libvirt.open(self.driver.uri)
        try:
            return ET.fromstring(conn.lookupByName(self.vm_id).XMLDesc(0))
        finally:
            conn.close()

    def wait_probe(self, target: str, ok: bool, after: int, *, rounds: int | None = None) -> GuestReport:
        """Until the last ``rounds`` results of ``target`` from rounds after ``after`` are all ``ok`` (default: one
        success proves a path, two failures in a row its absence)."""
        rounds = rounds or (1 if ok else 2)

        def settled(r: GuestReport) -> bool:
            results = [good for rnd, good in r.probes(target) if rnd > after]
            return len(results) >= rounds and all(good == ok for good in results[-rounds:])

        what = f"{self.label}: {rounds} results {'ok' if ok else 'fail'} of {target} after round {after}"
        return self.log().wait(settled, timeout_s=WAIT_S, what=what, alive=self.running)

    def now(self) -> int:
        """A round number whose successors started after this call (the current one may be half done)."""
        return self.report().last_probe_round + 1


def _target(spec: str) -> str:
    kind, peer, *port = spec.split()
    return ":".join([kind, ADDR[peer], *port])


def _spec(label: str, vm_id: str, nic: NicSpec, image: Any) -> VMSpec:
    probes = "".join(f"      {' '.join(ADDR.get(w, w) for w in p.split())}\n" for p in PROBES[label])
    user_data = f"#cloud-config\nwrite_files:\n  - path: /etc/confluencia/probes\n    content: |\n{probes}"
    seed = CloudInit(hostname=f"net-{label}", instance_id=vm_id, user_data=user_data,
                     networks=(NetConfig(address=f"{ADDR[label]}/24", mac=nic.mac),))  # fmt: skip
    root = DiskSpec(volume_id=f"{vm_id}-root", size_gib=1, pool=SHARED_POOL, image=image)
    return VMSpec(vm_id=vm_id, name=f"net-{label}", vcpus=1, ram_mib=128, disk_gib=1, tenant_id="tenant-n",
                  disks=(root,), cloud_init=seed, nics=(nic,), firewall=DENY)  # fmt: skip


@pytest.fixture(scope="module")
def guests(lab: Lab, request: pytest.FixtureRequest) -> Iterator[dict[str, Guest]]:
    from agents.libvirt_driver import LibvirtDriver

    image = guest_image_for(request.config).image_ref()
    drivers = tuple(LibvirtDriver(h.uri, **driver_options(h)) for h in (host(lab, 1), host(lab, 2)))
    made: dict[str, Guest] = {}
    try:
        for label, (on, segment) in PLACE.items():
            vm_id = f"net-{label}-{uuid.uuid4().hex[:8]}"
            mac = "52:54:00:" + ":".join(f"{b:02x}" for b in os.urandom(3))
            nic = NicSpec(f"{vm_id}-port", mac, PHYSNET, segment, (f"{ADDR[label]}/24",))
            made[label] = Guest(label, vm_id, nic, drivers, on)
            drivers[on].create(_spec(label, vm_id, nic, image))
        for g in made.values():  # no firewall yet: the control plane sets one only for VMs with security groups
            g.driver.start(g.vm_id)
        for g in made.values():
            g.log().wait(lambda r: r.last_probe_round >= 1, timeout_s=BOOT_TIMEOUT_S, what="its first probes",
                         alive=g.running)  # fmt: skip
        yield made
    finally:
        for g in made.values():
            for drv in drivers:
                with contextlib.suppress(DriverError):
                    drv.delete(g.vm_id)
                with contextlib.suppress(DriverError):
                    drv.clear_firewall(g.vm_id)


def test_guests_on_one_segment_reach_each_other_across_hosts(lab: Lab, guests: dict[str, Guest]) -> None:
    a, b = guests["a"], guests["b"]
    for g in (a, b):
        report = g.report()
        assert report.address == f"{ADDR[g.label]}/24" and report.first("nic") == f"eth0 mac={g.nic.mac}"
        iface = g.xml().find("devices/interface")
        assert iface is not None and iface.get("type") == "bridge"
        assert iface.find("source").get("bridge") == lab.network.bridge(PLACE[g.label][1])
    a.wait_probe(_target("ping b"), True, 0)
    a.wait_probe(_target("tcp b 7"), True, 0)
    b.wait_probe(_target("ping a"), True, 0)
    b.wait_probe(_target("tcp a 7"), True, 0)


def test_a_guest_on_another_segment_cannot_reach_them(guests: dict[str, Guest]) -> None:
    a, c = guests["a"], guests["c"]
    c.wait_probe(_target("ping a"), False, 0, rounds=3)  # the probes ran (three rounds) and all failed
    c.wait_probe(_target("tcp a 7"), False, 0, rounds=3)
    assert c.report().address == f"{ADDR['c']}/24" and c.report().first("nic") == f"eth0 mac={c.nic.mac}"
    assert any(ok for _, ok in a.report().probes(_target("ping b"))), "while a reaches its own segment"


def test_the_firewall_drops_inbound_a_rule_opens_a_port_and_removing_it_closes_it(guests: dict[str, Guest]) -> None:
    a, b = guests["a"], guests["b"]
    b.driver.set_firewall(b.vm_id, (b.nic,), DENY)
    after_a, after_b = a.now(), b.now()  # both guests' probes go on meanwhile: each waits for its own rounds
    a.wait_probe(_target("tcp b 7"), False, after_a)
    a.wait_probe(_target("ping b"), False, after_a)
    b.wait_probe(_target("tcp a 7"), True, after_b)  # replies to its own connections still come in
    b.wait_probe(_target("ping a"), True, after_b)
    b.driver.set_firewall(b.vm_id, (b.nic,), FirewallSpec(rules=(FirewallRule("tcp", 7, 7, f"{ADDR['a']}/32"),)))
    after_a = a.now()
    report = a.wait_probe(_target("tcp b 7"), True, after_a)
    assert not any(ok for rnd, ok in report.probes(_target("ping b")) if rnd > after_a), "ICMP stays closed"
    b.driver.set_firewall(b.vm_id, (b.nic,), DENY)
    a.wait_probe(_target("tcp b 7"), False, a.now())


def test_traffic_from_another_address_than_the_nics_is_dropped(guests: dict[str, Guest]) -> None:
    a, b = guests["a"], guests["b"]
    open_all = FirewallSpec(rules=(FirewallRule("any"),))
    b.driver.set_firewall(b.vm_id, (replace(b.nic, addresses=("192.0.2.99/24",)),), open_all)  # b uses .22
    after_a, after_b = a.now(), b.now()
    b.wait_probe(_target("ping a"), False, after_b)
    a.wait_probe(_target("tcp b 7"), False, after_a)  # its answers claim .22 too
    b.driver.set_firewall(b.vm_id, (b.nic,), open_all)
    after_a, after_b = a.now(), b.now()
    b.wait_probe(_target("ping a"), True, after_b)
    a.wait_probe(_target("tcp b 7"), True, after_a)


def test_a_live_migration_keeps_the_address_connectivity_and_firewall(guests: dict[str, Guest]) -> None:
    a, b = guests["a"], guests["b"]
    only_echo = FirewallSpec(rules=(FirewallRule("tcp", 7, 7, f"{ADDR['a']}/32"),))
    b.driver.set_firewall(b.vm_id, (b.nic,), only_echo)
    a.wait_probe(_target("tcp b 7"), True, a.now())
    boots = len(b.report().all("kernel"))
    target = b.drivers[1 - b.on]
    target.set_firewall(b.vm_id, (b.nic,), only_echo)  # the control plane: the target first ...
    started = time.monotonic()
    result = b.driver.migrate(b.vm_id, target, timeout_s=180)
    b.driver.clear_firewall(b.vm_id)  # ... the source's after
    b.on = 1 - b.on
    assert b.drivers[1 - b.on].get(b.vm_id) is None and b.running()
    after, after_b = a.now(), b.now()
    report = a.wait_probe(_target("tcp b 7"), True, after)
    assert not any(ok for rnd, ok in report.probes(_target("ping b")) if rnd > after), "the target filters"
    b_report = b.wait_probe(_target("tcp a 7"), True, after_b)
    assert len(b_report.all("kernel")) == boots and b_report.address == f"{ADDR['b']}/24", "no new boot"
    print(f"\nlive migration of a guest with a NIC and a firewall: {result.duration_s:.1f} s "
          f"(echo answered again {time.monotonic() - started:.1f} s after it began)")  # fmt: skip
