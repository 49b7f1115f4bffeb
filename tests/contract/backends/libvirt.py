"""Contract backend: two hosts of the libvirt lab (real session daemons, tiny TCG guests)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from agents.base import HypervisorDriver, VMSpec
from agents.libvirt_firewall import listing
from agents.libvirt_lab import missing_requirements
from agents.libvirt_lab_network import PHYSNET, SEGMENTS
from tests.contract.backends import ContractBackend, HostPair

FOREIGN_XML = """<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>
<os><type arch='x86_64'>hvm</type><boot dev='network'/></os>
<devices><memballoon model='none'/></devices></domain>"""


def _spec(vm_id: str) -> VMSpec:
    return VMSpec(vm_id=vm_id, name=f"contract {vm_id}", vcpus=1, ram_mib=32, disk_gib=1, tenant_id="tenant-c")


def _missing(config: pytest.Config) -> str | None:
    reason = missing_requirements()
    return f"libvirt lab unavailable: {reason}" if reason else None


@contextmanager
def _open(config: pytest.Config) -> Iterator[HostPair]:
    import libvirt

    from agents.libvirt_driver import LibvirtDriver
    from agents.libvirt_lab_storage import LOCAL_POOL
    from tests.lab.guest_image import guest_image_for, missing_tools
    from tests.lab.session import driver_options, host, lab_for

    lab = lab_for(config)
    image = None if missing_tools() else guest_image_for(config).image_ref()  # None: disk tests are SKIPPED
    h1, h2 = host(lab, 1), host(lab, 2)
    a = LibvirtDriver(h1.uri, **driver_options(h1))
    b = LibvirtDriver(h2.uri, **driver_options(h2))

    def add_foreign(driver: HypervisorDriver, name: str) -> None:
        conn = libvirt.open(driver.uri)
        try:
            conn.defineXML(FOREIGN_XML.format(name=name)).create()
        finally:
            conn.close()

    def remove_foreign(driver: HypervisorDriver, name: str) -> None:
        conn = libvirt.open(driver.uri)
        try:
            dom = conn.lookupByName(name)
            with contextlib.suppress(libvirt.libvirtError):
                dom.destroy()
            dom.undefine()
        except libvirt.libvirtError:
            pass
        finally:
            conn.close()

    def unreachable() -> HypervisorDriver:
        return LibvirtDriver(f"qemu:///session?socket=/tmp/confluencia-no-daemon-{uuid.uuid4().hex[:6]}/sock")

    try:
        yield HostPair(
            a=a,
            b=b,
            spec=_spec,
            add_foreign=add_foreign,
            remove_foreign=remove_foreign,
            unreachable=unreachable,
            make_uncooperative=None,  # lab guests have no OS: they never answer the ACPI power button
            valid_uris=[
                "qemu:///system",
                "qemu+ssh://user@host/system",
                "qemu+ssh://confluencia@hv1.example.org:2222/system?keyfile=/etc/confluencia/id_ed25519",
                "qemu+tls://hv2.example.org/system",
                "qemu:///session?socket=/tmp/run-cflab1/libvirt/libvirt-sock",
            ],
            invalid_uris=[
                "",
                "garbage",
                "qemu",
                "qemu://",
                "qemu+ssh://user@host",
                "qemu+ssh:///system",
                "xen:///system",
                "http://host/system",
                "test:///default",
                "qemu+carrier-pigeon://host/system",
                "qemu:///system?socket=relative/path",
                "qemu:///system?bogus=1",
                "qemu+ssh://user:secret@host/system",
                "qemu:///other",
            ],
            image=image,
            pool=LOCAL_POOL,  # each host's own disks: migrations copy them (shared pools: tests/integration)
            physnet=PHYSNET,  # the lab's bridges: one per segment, shared by the lab's hosts
            segments=tuple(SEGMENTS[:3]),
            firewall_of=lambda driver, vm_id: listing(driver.uri, vm_id),  # its nftables chains on that host
        )
    finally:
        a.close()
        b.close()


BACKEND = ContractBackend(kind="libvirt", missing=_missing, open=_open)
