"""The libvirt driver's options and domain XML for disks, seeds, consoles and NICs (pure: no libvirt needed)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from agents.base import CloudInit, DiskSpec, ImageRef, NetConfig, VMSpec
from agents.errors import DriverError
from agents.libvirt_devices import Layout, disk_xml, disks_of, next_target, serial_log_of, vnc_port, with_paths
from agents.libvirt_options import parse_options
from agents.libvirt_xml import METADATA_NS, OurMetadata, VolumeRef, domain_xml, metadata_xml, parse_metadata

SESSION = "qemu:///session?socket=/tmp/run-x/libvirt/libvirt-sock"
IMAGE = ImageRef("img1", "qcow2", 32 << 20, "sha256:" + "0" * 64, "/store/img1.qcow2")


def test_storage_options_have_defaults_and_are_checked() -> None:
    opts = parse_options({}, "qemu:///system")
    assert opts.storage.pools == {"default": "/var/lib/libvirt/images/confluencia"}
    assert (opts.storage.shared, opts.vnc_listen, opts.console_host, opts.serial_log, opts.nic) == (
        frozenset(), "127.0.0.1", "127.0.0.1", True, "none")  # fmt: skip
    assert parse_options({}, SESSION).nic == "user"  # session daemons: user-mode networking
    opts = parse_options({"pools": "fast=/srv/a, nfs=/mnt/nfs/", "shared_pools": "nfs", "image_dir": "/srv/img",
                          "vnc_listen": "0.0.0.0", "serial_log": "false"}, "qemu+ssh://hv1/system")  # fmt: skip
    assert opts.storage.pools == {"fast": "/srv/a", "nfs": "/mnt/nfs"}
    assert opts.storage.local_pools == {"fast"} and opts.storage.shared == {"nfs"}
    assert opts.console_host == "hv1" and opts.serial_log is False  # a wildcard listen: the host's name
    assert opts.storage.pool_of("/mnt/nfs/x.qcow2") == "nfs" and opts.storage.pool_of("/srv/img/i.qcow2") == "images"
    assert opts.storage.pool_of("/elsewhere/x.qcow2") is None


@pytest.mark.parametrize("options", [
    {"pool": "x=/a"},  # unknown option
    {"pools": "x"}, {"pools": "x=relative"}, {"pools": "a=/a,a=/b"}, {"pools": "images=/a"}, {"pools": "Bad=/a"},
    {"pools": "a=/a", "shared_pools": "b"},
    {"pools": "a=/same,b=/same"}, {"pools": "a=/same", "image_dir": "/same"},
    {"image_dir": "relative"}, {"serial_log": "yes"}, {"nic": "bridge:br0"},
])  # fmt: skip
def test_bad_storage_options_are_refused(options: dict[str, str]) -> None:
    with pytest.raises(DriverError):
        parse_options(options, "qemu:///system")


def _spec(**changes: object) -> VMSpec:
    root = DiskSpec("vol-root", 2, "fast", IMAGE)
    seed = CloudInit("h1", "vm1", networks=(NetConfig(address="192.0.2.5/24", mac="52:54:00:AA:BB:CC"),))
    fields: dict[str, object] = {"vm_id": "vm1", "name": "n", "vcpus": 2, "ram_mib": 256, "disk_gib": 2,
                                 "tenant_id": "t", "disks": (root,), "cloud_init": seed, **changes}
    return VMSpec(**fields)  # type: ignore[arg-type]


def test_a_domain_with_disks_boots_from_its_root_disk_with_seed_console_and_nic() -> None:
    layout = Layout(root="/p/vm1-root.qcow2", data=(("/p/d1.qcow2", "d1"),), seed="/p/vm1-seed.iso",
                    serial_log="/p/vm1-console.log", nic="user", mac="52:54:00:AA:BB:CC")  # fmt: skip
    refs = (VolumeRef("vol-root", "fast", "vm1-root.qcow2"), VolumeRef("d1", "fast", "d1.qcow2"))
    xml = domain_xml(_spec(), "qemu", layout=layout, volumes=refs)
    root = ET.fromstring(xml)
    assert root.find("os/boot").get("dev") == "hd"
    assert [f.tag for f in root.find("features")] == ["acpi", "apic"]
    assert [(d.target, d.path, d.device, d.serial) for d in disks_of(xml)] == [
        ("vda", "/p/vm1-root.qcow2", "disk", None), ("vdb", "/p/d1.qcow2", "disk", "d1"),
        ("hdc", "/p/vm1-seed.iso", "cdrom", None)]  # fmt: skip
    cdrom = root.find("devices/disk[@device='cdrom']")
    assert cdrom.find("target").get("bus") == "ide" and cdrom.find("readonly") is not None
    assert root.find("devices/interface[@type='user']/mac").get("address") == "52:54:00:aa:bb:cc"
    assert root.find("devices/interface/model").get("type") == "virtio"
    graphics = root.find("devices/graphics")
    assert (graphics.get("type"), graphics.get("port"), graphics.get("autoport"), graphics.get("listen")) == (
        "vnc", "-1", "yes", "127.0.0.1")  # fmt: skip
    assert serial_log_of(xml) == "/p/vm1-console.log"
    assert vnc_port(xml) is None  # autoport: the port is only in the live XML
    ours = parse_metadata(ET.tostring(root.find(f"metadata/{{{METADATA_NS}}}vm"), encoding="unicode"))
    assert ours is not None and ours.volumes == refs and ours.root == refs[0]


def test_a_diskless_spec_still_makes_the_minimal_domain() -> None:
    root = ET.fromstring(domain_xml(_spec(disks=(), cloud_init=None), "qemu"))
    assert root.find("os/boot").get("dev") == "network"
    assert [f.tag for f in root.find("features")] == ["acpi"]
    assert [d.tag for d in root.find("devices")] == ["memballoon"]
    assert parse_metadata(metadata_xml(_spec(disks=()))).volumes == ()  # type: ignore[union-attr]


def test_volumes_in_our_metadata_are_added_replaced_and_removed_in_order() -> None:
    meta = OurMetadata.of(_spec(), (VolumeRef("r", "fast", "vm1-root.qcow2"),))
    meta = meta.with_volume(VolumeRef("a", "fast", "a.qcow2")).with_volume(VolumeRef("b", "nfs", "b.qcow2"))
    meta = meta.with_volume(VolumeRef("a", "nfs", "a.qcow2"))
    assert [(v.volume_id, v.pool) for v in meta.volumes] == [("r", "fast"), ("a", "nfs"), ("b", "nfs")]
    assert parse_metadata(metadata_xml(meta.without_volume("a"))).volumes == (  # type: ignore[union-attr]
        VolumeRef("r", "fast", "vm1-root.qcow2"), VolumeRef("b", "nfs", "b.qcow2"))  # fmt: skip


def test_disk_names_and_path_moves() -> None:
    assert next_target({"vda", "vdb", "hdc"}) == "vdc"
    assert ET.fromstring(disk_xml("/p/x.qcow2", "vdb", serial="vol:1/ä")).findtext("serial") == "vol-1--"
    assert next_target({f"vd{c}" for c in "abcdefghijklmnopqrstuvwxyz"}) == "vdaa"
    layout = Layout(root="/a/r.qcow2", seed="/a/s.iso", serial_log="/a/c.log")
    xml = domain_xml(_spec(), "qemu", layout=layout)
    moved = with_paths(xml, {"/a/r.qcow2": "/b/r.qcow2", "/a/c.log": "/b/c.log"})
    assert [d.path for d in disks_of(moved)] == ["/b/r.qcow2", "/a/s.iso"]
    assert serial_log_of(moved) == "/b/c.log"
