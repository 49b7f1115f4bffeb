"""The libvirt driver against real lab daemons: facts, XML and metadata, usage, concurrency, errors."""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET

import pytest

from agents.base import DomainState
from agents.errors import DriverError, InvalidState, NotFound
from agents.libvirt_xml import METADATA_NS, domain_uuid

pytestmark = pytest.mark.libvirt


def test_host_facts_report_versions_and_the_configured_host_uuid(lab, d1):
    facts = d1.host_facts()
    h1 = lab.hosts()[0]
    assert facts.hostname == h1.name
    assert facts.host_uuid == h1.host_uuid
    assert facts.hypervisor.startswith("QEMU ") and facts.driver_version.startswith("libvirt ")
    assert facts.vcpus >= 1 and facts.ram_mib > 256


def test_domain_xml_carries_our_ids_and_size(d1, new_spec):
    import libvirt

    spec = new_spec(vcpus=2, ram_mib=48, disk_gib=7, image="debian-12")
    info = d1.create(spec)
    assert info.native_id == domain_uuid(spec.vm_id)
    conn = libvirt.open(d1.uri)
    try:
        root = ET.fromstring(conn.lookupByName(spec.vm_id).XMLDesc(0))
    finally:
        conn.close()
    assert root.get("type") == "qemu"  # lab users have no /dev/kvm access: TCG picked automatically
    assert root.findtext("name") == spec.vm_id
    assert root.findtext("vcpu") == "2"
    assert int(root.findtext("memory")) == 48 * 1024  # KiB
    ours = root.find(f"metadata/{{{METADATA_NS}}}vm")
    assert ours is not None
    fields = {child.tag.split("}")[1]: child.text for child in ours}
    assert fields["vm-id"] == spec.vm_id and fields["tenant-id"] == "tenant-i"
    assert (fields["disk-gib"], fields["image"]) == ("7", "debian-12")
    assert d1.get(spec.vm_id).disk_gib == 7


def test_host_usage_reports_cpu_time_and_memory_of_running_domains(d1, new_spec):
    spec = new_spec()
    d1.create(spec)
    d1.start(spec.vm_id)
    deadline = time.monotonic() + 30
    while True:  # cpu time grows while the guest firmware runs
        mine = next(d for d in d1.host_usage().domains if d.vm_id == spec.vm_id)
        if mine.cpu_time_ns and mine.cpu_time_ns > 0:
            break
        assert time.monotonic() < deadline, "cpu time never grew"
        time.sleep(0.2)  # polling the counter
    assert mine.ram_mib == 32 and mine.vcpus == 1 and mine.state == DomainState.RUNNING


def test_concurrent_duplicate_creates_define_one_domain(d1, new_spec):
    spec = new_spec()
    results, errors = [], []

    def create() -> None:
        try:
            results.append(d1.create(spec))
        except DriverError as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 4
    assert len({r.native_id for r in results}) == 1
    assert [d.vm_id for d in d1.list_domains()].count(spec.vm_id) == 1


def test_delete_refuses_a_domain_confluencia_did_not_create(d1):
    import libvirt

    name = "foreign-delete-guard"
    conn = libvirt.open(d1.uri)
    try:
        conn.defineXML(
            f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory>"
            "<os><type arch='x86_64'>hvm</type></os></domain>"
        )
        with pytest.raises(InvalidState):
            d1.delete(name)
        assert d1.get(name) is not None
    finally:
        conn.lookupByName(name).undefine()
        conn.close()


def test_libvirt_errors_map_to_our_types(d1, new_spec):
    import libvirt

    from agents.libvirt_errors import map_error

    conn = libvirt.open(d1.uri)
    spec = new_spec()
    d1.create(spec)
    try:
        with pytest.raises(libvirt.libvirtError) as missing:
            conn.lookupByName("no-such-domain-anywhere")
        assert isinstance(map_error(missing.value, d1.uri), NotFound)
        assert map_error(missing.value, d1.uri).code == "NO_DOMAIN"
        with pytest.raises(libvirt.libvirtError) as not_running:
            conn.lookupByName(spec.vm_id).shutdown()  # defined but not running
        mapped = map_error(not_running.value, d1.uri)
        assert isinstance(mapped, InvalidState) and mapped.code == "OPERATION_INVALID"
    finally:
        conn.close()


def test_drivers_of_one_host_share_a_connection(d1, lab):
    from agents.libvirt_conn import connection
    from agents.libvirt_driver import LibvirtDriver

    other = LibvirtDriver(d1.uri)
    d1.list_domains()
    other.list_domains()
    assert connection(d1.uri) is connection(other.uri)


def test_concurrent_live_migrations_into_one_host_all_land(d1, d2, new_spec):
    """A plan wave may send several guests to the same host at once: each incoming QEMU needs its own port."""
    specs = [new_spec() for _ in range(3)]
    for spec in specs:
        d1.create(spec)
        d1.start(spec.vm_id)
    errors: list[BaseException] = []

    def move(vm_id: str) -> None:
        try:
            d1.migrate(vm_id, d2, timeout_s=120)
        except DriverError as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=move, args=(s.vm_id,)) for s in specs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors, errors
    on_target = {d.vm_id: d.state for d in d2.list_domains()}
    assert all(on_target.get(s.vm_id) == DomainState.RUNNING for s in specs), on_target
    assert not {s.vm_id for s in specs} & {d.vm_id for d in d1.list_domains()}
