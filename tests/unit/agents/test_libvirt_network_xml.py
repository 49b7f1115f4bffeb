"""The libvirt driver's NICs on segments and its nftables firewall, as text (pure: no libvirt, no nft)."""

from __future__ import annotations

import shutil
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from agents.base import FirewallRule, FirewallSpec, NicSpec, VMSpec
from agents.errors import ConnectionFailed, DriverError
from agents.host_commands import is_local, ssh_argv
from agents.libvirt_conn import ConnectSettings
from agents.libvirt_devices import Layout
from agents.libvirt_driver import LibvirtDriver  # set_firewall makes no libvirt call: it only runs nft
from agents.libvirt_firewall import chain_name, render, render_clear, rule_text, table_name
from agents.libvirt_nics import bridges_of, with_bridges
from agents.libvirt_options import parse_options
from agents.libvirt_xml import NicRef, OurMetadata, domain_xml, metadata_xml, parse_metadata

NICS = (NicSpec("port-a", "52:54:00:AA:00:01", "tenants", 3, ("10.0.3.5/24",)),
        NicSpec("port-b", "52:54:00:aa:00:02", "storage", 7, ("10.0.7.5/24", "2001:db8::5/64")))  # fmt: skip


def _spec(**changes: object) -> VMSpec:
    fields: dict[str, object] = {"vm_id": "vm1", "name": "n", "vcpus": 1, "ram_mib": 64, "disk_gib": 1,
                                 "tenant_id": "t", "nics": NICS, **changes}  # fmt: skip
    return VMSpec(**fields)  # type: ignore[arg-type]


def test_the_bridges_option_maps_segments_to_bridge_names() -> None:
    opts = parse_options({"bridges": "tenants=br-vlan{segment}, storage=st{segment}"}, "qemu:///system")
    assert opts.bridges == {"tenants": "br-vlan{segment}", "storage": "st{segment}"}
    assert opts.bridge_for("tenants", 42, "h") == "br-vlan42"
    assert parse_options({}, "qemu:///system").bridges == {}
    with pytest.raises(DriverError) as err:
        opts.bridge_for("public", 1, "qemu+ssh://hv1/system")
    assert err.value.code == "NO_BRIDGE" and "public" in err.value.message and "hv1" in err.value.message
    with pytest.raises(DriverError):
        opts.bridge_for("tenants", 1234567890, "h")  # br-vlan1234567890: longer than 15 characters


@pytest.mark.parametrize("raw", ["tenants", "tenants=br0", "tenants=br{vlan}", "tenants={segment}-far-too-long-x",
                                 "a=b{segment},a=c{segment}", "bad name=b{segment}", "t=b{segment}{"])  # fmt: skip
def test_bad_bridges_options_are_refused(raw: str) -> None:
    with pytest.raises(DriverError):
        parse_options({"bridges": raw}, "qemu:///system")


def test_nics_become_bridge_interfaces_in_order_and_are_kept_in_our_metadata() -> None:
    bridged = (("br3", "52:54:00:aa:00:01"), ("st7", "52:54:00:aa:00:02"))
    for layout in (None, Layout(root="/p/r.qcow2", nic="user")):  # diskless, and with disks (no user NIC then)
        root = ET.fromstring(domain_xml(_spec(), "qemu", layout=layout, bridged=bridged))
        ifaces = root.findall("devices/interface")
        assert [i.get("type") for i in ifaces] == ["bridge", "bridge"]
        assert [[c.tag for c in i] for i in ifaces] == [["source", "mac", "model"]] * 2
        assert [(i.find("source").get("bridge"), i.find("mac").get("address")) for i in ifaces] == list(bridged)
        assert {i.find("model").get("type") for i in ifaces} == {"virtio"}
    meta = parse_metadata(metadata_xml(OurMetadata.of(_spec())))
    assert meta is not None and meta.nics == (NicRef("port-a", "52:54:00:aa:00:01", "tenants", 3),
                                              NicRef("port-b", "52:54:00:aa:00:02", "storage", 7))  # fmt: skip
    assert parse_metadata(metadata_xml(OurMetadata.of(_spec(nics=())))).nics == ()  # type: ignore[union-attr]
    plain = ET.fromstring(domain_xml(_spec(nics=()), "qemu", layout=Layout(root="/p/r.qcow2", nic="user")))
    assert [i.get("type") for i in plain.findall("devices/interface")] == ["user"]  # no NicSpecs: as before


def test_a_migration_renames_only_the_bridges_of_the_nics_it_names() -> None:
    xml = domain_xml(_spec(), "qemu", bridged=(("br3", "52:54:00:aa:00:01"), ("st7", "52:54:00:aa:00:02")))
    moved = with_bridges(xml, {"52:54:00:aa:00:02": "storage-7"})
    assert bridges_of(moved) == {"52:54:00:aa:00:01": "br3", "52:54:00:aa:00:02": "storage-7"}


def test_the_firewall_script_replaces_one_vms_chains_in_one_transaction() -> None:
    fw = FirewallSpec(rules=(FirewallRule("tcp", 22, 22, "192.0.2.0/24"), FirewallRule("udp", 1000, 2000),
                             FirewallRule("icmp"), FirewallRule("any", source="2001:db8::/32")))  # fmt: skip
    script = render("cf_x", "vm:1", NICS, fw)
    chain = chain_name("vm:1")
    assert chain.startswith("vm_vm_1_") and chain != chain_name("vm_1")  # sanitised, still unique
    lines = script.splitlines()
    flushes = [n for n, line in enumerate(lines) if line.startswith("flush chain")]
    assert len(flushes) == 3 and all(not line.startswith("add rule") for line in lines[: flushes[0]])
    assert f"add rule bridge cf_x {chain} ether saddr {{ 52:54:00:aa:00:01, 52:54:00:aa:00:02 }} jump {chain}_out" \
        in lines  # fmt: skip
    assert f"add rule bridge cf_x {chain}_out ether saddr 52:54:00:aa:00:02 ip saddr != {{ 10.0.7.5 }} drop" in lines
    assert f"add rule bridge cf_x {chain}_in ip saddr 192.0.2.0/24 tcp dport 22 accept" in lines
    assert lines[-1] == f"add rule bridge cf_x {chain}_in drop"
    assert "ct " not in script  # no conntrack in the bridge family here: learned flows instead
    clear = render_clear("cf_x", "vm:1").splitlines()
    assert clear[-1] == f"delete set bridge cf_x {chain}_p6" and f"delete chain bridge cf_x {chain}" in clear
    assert table_name("qemu:///system") != table_name("qemu+ssh://hv1/system")


@pytest.mark.parametrize(("rule", "text"), [
    (FirewallRule("tcp", 80, 443), "ether type ip tcp dport 80-443 accept"),
    (FirewallRule("udp", None, 53, "10.1.0.0/16"), "ip saddr 10.1.0.0/16 udp dport 53 accept"),
    (FirewallRule("icmp", source="::/0"), "ether type ip6 meta l4proto ipv6-icmp accept"),
    (FirewallRule("tcp"), "ether type ip meta l4proto tcp accept"),
    (FirewallRule("any", source="10.0.0.1"), "ip saddr 10.0.0.1/32 accept"),
])  # fmt: skip
def test_rules(rule: FirewallRule, text: str) -> None:
    assert rule_text(rule) == text


@pytest.mark.parametrize("rule", [FirewallRule("sctp"), FirewallRule("icmp", 1, 2), FirewallRule("tcp", 0, 5),
                                  FirewallRule("tcp", 9, 8), FirewallRule("any", source="10.0.0.300/8")])  # fmt: skip
def test_bad_rules_are_refused(rule: FirewallRule) -> None:
    with pytest.raises(DriverError):
        rule_text(rule)


def test_host_commands_reach_local_and_ssh_hosts() -> None:
    assert is_local("qemu:///system") and is_local("qemu:///session?socket=/tmp/x/sock")
    assert not is_local("qemu+ssh://cf@hv1/system") and not is_local("qemu+tcp://hv1/system")
    argv, user = ssh_argv("qemu+ssh://cf@hv1:2222/system?keyfile=/k/id&no_verify=1", ConnectSettings(5.0, 5, 3))
    assert user == "cf" and argv[-2:] == ["--", "hv1"]
    assert argv[argv.index("-p"):argv.index("-p") + 2] == ["-p", "2222"] and "/k/id" in argv
    assert {"BatchMode=yes", "ConnectTimeout=4", "ServerAliveInterval=5", "StrictHostKeyChecking=no"} <= set(argv)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a host whose sshd hangs)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.mark.skipif(shutil.which("ssh") is None, reason="the ssh client is not installed")
def test_the_firewall_of_a_host_ssh_cannot_reach_fails_within_the_connect_timeout(silent_port: int) -> None:
    nics = (NICS[0],)
    for port in (silent_port, 1):  # silent, and refused
        drv = LibvirtDriver(f"qemu+ssh://cf@127.0.0.1:{port}/system", connect_timeout="2",
                            bridges="tenants=br{segment}", breaker_cool_down="0")  # fmt: skip
        started = time.monotonic()
        with pytest.raises(ConnectionFailed) as err:
            drv.set_firewall("vm1", nics, FirewallSpec())
        assert err.value.code == "SSH_FAILED" and time.monotonic() - started < 5
    with pytest.raises(DriverError) as err:
        LibvirtDriver("qemu+tls://hv1/system").clear_firewall("vm1")
    assert err.value.code == "NO_SUPPORT"
