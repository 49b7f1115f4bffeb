"""Guest NICs on segments and the per-VM firewall, read back from the simulated cluster's config and firewall."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest

from agents.base import CloudInit, FirewallRule, FirewallSpec, NetConfig, NicSpec
from agents.errors import AlreadyExists, DriverError, InvalidState
from agents.proxmox_driver import ProxmoxDriver
from tests.integration.proxmox.conftest import Pve

NETWORKS = "tenants=vmbr1,servicios=vmbr0"
NIC_A = NicSpec("port-a", "52:54:00:ab:cd:01", "tenants", 101, ("10.20.0.5/24", "2001:db8::5/64"))
NIC_B = NicSpec("port-b", "52:54:00:ab:cd:02", "servicios", 4094, ("192.0.2.9/28",))
SSH = FirewallRule("tcp", 22, 22)
WEB_RANGE = FirewallRule("tcp", 8000, 8080, "10.1.0.0/16")
DNS_FROM_HOST = FirewallRule("udp", 53, None, "192.0.2.77")
PING = FirewallRule("icmp")


def _cfg(pve: Pve, vmid: Any, node: str = "pve1") -> dict[str, Any]:
    return dict(pve.data("GET", f"nodes/{node}/qemu/{vmid}/config"))


def _fw(pve: Pve, vmid: Any, what: str, node: str = "pve1") -> Any:
    return pve.data("GET", f"nodes/{node}/qemu/{vmid}/firewall/{what}")


def _ours(pve: Pve, vmid: Any, node: str = "pve1") -> list[dict[str, Any]]:
    keep = ("type", "action", "proto", "dport", "source", "enable")
    rules = _fw(pve, vmid, "rules", node)
    return [{k: r[k] for k in keep if k in r} for r in rules if r.get("comment") == "confluencia"]


def _state(pve: Pve, vmid: Any, node: str = "pve1") -> tuple[Any, ...]:
    """Everything a firewall change would touch, with PVE's digests."""
    sets = _fw(pve, vmid, "ipset", node)
    return (_fw(pve, vmid, "options", node), _fw(pve, vmid, "rules", node), sets,
            [_fw(pve, vmid, f"ipset/{s['name']}", node) for s in sets])


@pytest.fixture
def drv(make_driver: Any) -> ProxmoxDriver:
    return make_driver(networks=NETWORKS)  # type: ignore[no-any-return]


# ---- NICs ------------------------------------------------------------------------------------------------
def test_each_nic_becomes_a_net_on_its_bridge_with_the_segment_as_tag(pve: Pve, drv, spec):
    info = drv.create(spec(nics=(NIC_A, NIC_B)))
    cfg = _cfg(pve, info.native_id)
    assert cfg["net0"] == "virtio=52:54:00:AB:CD:01,bridge=vmbr1,firewall=1,tag=101"
    assert cfg["net1"] == "virtio=52:54:00:AB:CD:02,bridge=vmbr0,firewall=1,tag=4094"
    assert not [k for k in cfg if k.startswith("net") and k not in ("net0", "net1")]


def test_a_spec_without_nics_keeps_net0_on_the_bridge_option(pve: Pve, make_driver, spec):
    info = make_driver(bridge="vmbr1", networks=NETWORKS).create(spec())
    net0 = _cfg(pve, info.native_id)["net0"]
    assert net0.startswith("virtio=BC:24:11:") and net0.endswith(",bridge=vmbr1")
    assert "tag=" not in net0 and "firewall" not in net0
    assert _fw(pve, info.native_id, "rules") == [] and "enable" not in _fw(pve, info.native_id, "options")


def test_a_clone_gets_exactly_the_spec_nics(pve: Pve, drv, spec):
    with pve.cluster.lock:
        pve.cluster.vms[9000].options["net2"] = "e1000=BC:24:11:00:00:09,bridge=vmbr0"
    s = spec(image="debian-12", nics=(NIC_A,))
    info = drv.create(s)
    cfg = _cfg(pve, info.native_id)
    assert cfg["net0"] == "virtio=52:54:00:AB:CD:01,bridge=vmbr1,firewall=1,tag=101"
    assert "net2" not in cfg and "net1" not in cfg
    digest = cfg["digest"]
    assert drv.create(s).native_id == info.native_id  # again: same VM, nothing changed
    assert _cfg(pve, info.native_id)["digest"] == digest
    assert "confluencia:nics=52%3A54%3A00%3Aab%3Acd%3A01@tenants@101" in cfg["description"]
    for other in ((NIC_B,), (replace(NIC_A, segment=102),), (NIC_A, NIC_B), ()):
        with pytest.raises(AlreadyExists):  # the NICs are part of the spec, as PVE recorded them
            drv.create(replace(s, nics=other))


def test_ipconfig_n_configures_nic_n(pve: Pve, drv, spec):
    seed = CloudInit(hostname="h", instance_id="i", networks=(
        NetConfig(address="10.20.0.5/24", gateway="10.20.0.1", mac="52:54:00:AB:CD:01"), NetConfig()))
    info = drv.create(spec(image="debian-12", cloud_init=seed, nics=(NIC_A, NIC_B)))
    cfg = _cfg(pve, info.native_id)
    assert cfg["ipconfig0"] == "ip=10.20.0.5/24,gw=10.20.0.1" and "bridge=vmbr1" in cfg["net0"]
    assert cfg["ipconfig1"] == "ip=dhcp" and "bridge=vmbr0" in cfg["net1"]


@pytest.mark.parametrize(
    ("nics", "networks", "match"),
    [
        ((NicSpec("p", "52:54:00:00:00:01", "mystery", 5),), (), "physical network 'mystery'"),
        ((NIC_A,), (NetConfig(mac="52:54:00:00:00:99"),), "names MAC 52:54:00:00:00:99"),
        ((NIC_A,), (NetConfig(), NetConfig()), "configures 2 networks but the VM has 1 NICs"),
        ((NicSpec("p", "52:54:00:00:00:01", "tenants", 0),), (), "segment 0 is not a VLAN id"),
        ((NicSpec("p", "52:54:00:00:00:01", "tenants", 4095),), (), "segment 4095 is not a VLAN id"),
        ((NicSpec("p", "01:00:5e:00:00:01", "tenants", 7),), (), "is not a unicast MAC"),
    ],
)
def test_bad_nics_are_refused_before_anything_is_made(pve: Pve, drv, spec, nics, networks, match):
    seed = CloudInit(hostname="h", instance_id="i", networks=networks) if networks else None
    with pytest.raises(DriverError, match=match) as caught:
        drv.create(spec(nics=nics, cloud_init=seed))
    assert caught.value.code in ("NO_BRIDGE", "INVALID_ARG")
    assert not [v for v in pve.cluster.vms.values() if not v.template] and not pve.cluster.engine.tasks


def test_a_mapped_bridge_the_node_lacks_is_refused(pve: Pve, make_driver, spec):
    with pytest.raises(DriverError, match="bridge vmbr7 does not exist on node pve1") as caught:
        make_driver(networks="tenants=vmbr7").create(spec(nics=(NIC_A,)))
    assert caught.value.code == "NO_BRIDGE" and not pve.cluster.engine.tasks


def test_the_networks_option_is_checked(make_driver):
    for bad in ("tenants", "tenants=", "tenants=vmbr1,tenants=vmbr2", "x=this-name-is-too-long"):
        with pytest.raises(DriverError, match="option networks"):
            make_driver(networks=bad)


# ---- firewall ----------------------------------------------------------------------------------------------
def test_the_firewall_becomes_options_ipsets_and_rules(pve: Pve, drv, spec):
    fw = FirewallSpec(rules=(SSH, WEB_RANGE, DNS_FROM_HOST, PING))
    info = drv.create(spec(nics=(NIC_A, NIC_B), firewall=fw))
    vmid = info.native_id
    options = _fw(pve, vmid, "options")
    assert {k: options[k] for k in ("enable", "policy_in", "policy_out", "ipfilter")} == {
        "enable": 1, "policy_in": "DROP", "policy_out": "ACCEPT", "ipfilter": 1}
    sets = {s["name"]: s.get("comment") for s in _fw(pve, vmid, "ipset")}
    assert sets == {"ipfilter-net0": "confluencia", "ipfilter-net1": "confluencia"}
    assert sorted(e["cidr"] for e in _fw(pve, vmid, "ipset/ipfilter-net0")) == ["10.20.0.5", "2001:db8::5"]
    assert [e["cidr"] for e in _fw(pve, vmid, "ipset/ipfilter-net1")] == ["192.0.2.9"]
    base = {"type": "in", "action": "ACCEPT", "enable": 1}
    assert _ours(pve, vmid) == [
        {**base, "proto": "tcp", "dport": "22"},
        {**base, "proto": "tcp", "dport": "8000:8080", "source": "10.1.0.0/16"},
        {**base, "proto": "udp", "dport": "53", "source": "192.0.2.77/32"},
        {**base, "proto": "icmp"},
        {**base, "proto": "ipv6-icmp"},
    ]
    assert [r["pos"] for r in _fw(pve, vmid, "rules")] == [0, 1, 2, 3, 4]


def test_set_firewall_replaces_our_rules_and_keeps_foreign_ones(pve: Pve, drv, spec):
    info = drv.create(spec(nics=(NIC_A,)))
    vmid = info.native_id
    foreign = {"type": "in", "action": "DROP", "proto": "tcp", "dport": "25", "enable": "1", "comment": "ops"}
    pve.data("POST", f"nodes/pve1/qemu/{vmid}/firewall/rules", data=foreign)
    drv.set_firewall(info.vm_id, (NIC_A,), FirewallSpec(rules=(SSH, WEB_RANGE)))
    drv.set_firewall(info.vm_id, (NIC_A,), FirewallSpec(rules=(WEB_RANGE, FirewallRule("udp", 5353))))
    ours = sorted((r.get("proto"), r.get("dport")) for r in _ours(pve, vmid))  # ACCEPT rules: order is moot
    assert ours == [("tcp", "8000:8080"), ("udp", "5353")]
    others = [r for r in _fw(pve, vmid, "rules") if r.get("comment") != "confluencia"]
    assert [(r["action"], r["dport"], r["comment"]) for r in others] == [("DROP", "25", "ops")]


def test_set_firewall_twice_changes_nothing_the_second_time(pve: Pve, drv, spec):
    info = drv.create(spec(nics=(NIC_A, NIC_B)))
    fw = FirewallSpec(rules=(SSH, WEB_RANGE, PING))
    drv.set_firewall(info.vm_id, (NIC_A, NIC_B), fw)
    before = _state(pve, info.native_id)
    drv.set_firewall(info.vm_id, (NIC_A, NIC_B), fw)
    assert _state(pve, info.native_id) == before


def test_changed_addresses_and_fewer_nics_update_the_ipsets(pve: Pve, drv, spec):
    info = drv.create(spec(nics=(NIC_A, NIC_B), firewall=FirewallSpec()))
    moved = NicSpec("port-a", NIC_A.mac, "tenants", 101, ("10.20.0.6/24",))
    drv.set_firewall(info.vm_id, (moved,), FirewallSpec())
    assert [s["name"] for s in _fw(pve, info.native_id, "ipset")] == ["ipfilter-net0"]
    assert [e["cidr"] for e in _fw(pve, info.native_id, "ipset/ipfilter-net0")] == ["10.20.0.6"]
    drv.set_firewall(info.vm_id, (NicSpec("port-a", NIC_A.mac, "tenants", 101),), FirewallSpec())
    assert _fw(pve, info.native_id, "ipset") == []  # a DHCP NIC: no address set, and no implicit empty one
    assert _fw(pve, info.native_id, "options")["ipfilter"] == 0


def test_clear_firewall_removes_ours_and_disables_it_twice_over(pve: Pve, drv, spec):
    info = drv.create(spec(nics=(NIC_A,), firewall=FirewallSpec(rules=(SSH,))))
    vmid = info.native_id
    pve.data("POST", f"nodes/pve1/qemu/{vmid}/firewall/rules", data={"type": "out", "action": "ACCEPT"})
    drv.clear_firewall(info.vm_id)
    assert _ours(pve, vmid) == [] and _fw(pve, vmid, "ipset") == []
    assert _fw(pve, vmid, "options")["enable"] == 0
    assert [r["type"] for r in _fw(pve, vmid, "rules")] == ["out"]
    before = _state(pve, vmid)
    drv.clear_firewall(info.vm_id)
    assert _state(pve, vmid) == before
    drv.clear_firewall("never-made")


def test_a_disabled_firewall_keeps_its_rules_ready(pve: Pve, drv, spec):
    info = drv.create(spec(nics=(NIC_A,), firewall=FirewallSpec(rules=(SSH,), enabled=False)))
    assert _fw(pve, info.native_id, "options").get("enable", 0) == 0  # PVE's default: off
    assert len(_ours(pve, info.native_id)) == 1


def test_a_firewall_set_before_the_vm_exists_is_applied_at_create(pve: Pve, drv, spec):
    s = spec(nics=(NIC_A,))
    drv.set_firewall(s.vm_id, (NIC_A,), FirewallSpec(rules=(SSH,)))
    drv.set_firewall(s.vm_id, (NIC_A,), FirewallSpec(rules=(SSH,)))
    assert pve.cluster.firewalls == {} and not [v for v in pve.cluster.vms.values() if not v.template]
    info = drv.create(s)
    assert _fw(pve, info.native_id, "options")["enable"] == 1 and len(_ours(pve, info.native_id)) == 1
    other = spec(nics=(NIC_A,))
    drv.set_firewall(other.vm_id, (NIC_A,), FirewallSpec(rules=(SSH,)))
    drv.clear_firewall(other.vm_id)
    drv.clear_firewall(other.vm_id)
    assert _fw(pve, drv.create(other).native_id, "rules") == []  # cleared: nothing was remembered


@pytest.mark.parametrize(
    ("rule", "match"),
    [
        (FirewallRule("gre"), "protocol 'gre'"),
        (FirewallRule("icmp", 1, 2), "ports need tcp or udp"),
        (FirewallRule("tcp", 90, 80), "not a range"),
        (FirewallRule("tcp", 1, 70000), "not a range"),
        (FirewallRule("tcp", source="10.0.0.300/8"), "not a CIDR"),
    ],
)
def test_bad_rules_are_refused_before_anything_changes(pve: Pve, drv, spec, rule, match):
    info = drv.create(spec(nics=(NIC_A,), firewall=FirewallSpec(rules=(SSH,))))
    before = _state(pve, info.native_id)
    with pytest.raises(DriverError, match=match) as caught:
        drv.set_firewall(info.vm_id, (NIC_A,), FirewallSpec(rules=(SSH, rule)))
    assert caught.value.code == "INVALID_ARG" and _state(pve, info.native_id) == before
    with pytest.raises(DriverError, match="physical network 'elsewhere'"):
        drv.set_firewall(info.vm_id, (NicSpec("p", NIC_A.mac, "elsewhere", 3),), FirewallSpec())


# ---- migration ---------------------------------------------------------------------------------------------
def test_nics_and_firewall_travel_with_a_live_migration(pve: Pve, make_driver, spec):
    src, dst = make_driver("pve1", networks=NETWORKS), make_driver("pve2", networks=NETWORKS)
    fw = FirewallSpec(rules=(SSH, WEB_RANGE))
    s = spec(nics=(NIC_A, NIC_B), firewall=fw)
    info = src.create(s)
    src.start(s.vm_id)
    nets = {k: v for k, v in _cfg(pve, info.native_id).items() if k.startswith("net")}
    before = _state(pve, info.native_id)
    dst.set_firewall(s.vm_id, s.nics, fw)  # the target, before the move: the same file, nothing changes
    assert _state(pve, info.native_id) == before
    src.migrate(s.vm_id, dst)
    assert {k: v for k, v in _cfg(pve, info.native_id, "pve2").items() if k.startswith("net")} == nets
    assert _state(pve, info.native_id, "pve2") == before
    src.clear_firewall(s.vm_id)  # the source after the move: the VM left, its firewall is not touched
    assert _state(pve, info.native_id, "pve2") == before and dst.get(s.vm_id) is not None


def test_a_target_without_the_bridge_is_refused_before_the_move(pve: Pve, make_driver, spec):
    src, dst = make_driver("pve1", networks=NETWORKS), make_driver("pve2", networks=NETWORKS)
    s = spec(vm_id=str(uuid.uuid4()), nics=(NIC_A,))
    src.create(s)
    src.start(s.vm_id)
    pve.cluster.nodes["pve2"].bridges.discard("vmbr1")
    with pytest.raises(InvalidState, match="bridge vmbr1, which node pve2 does not have") as caught:
        src.migrate(s.vm_id, dst)
    assert caught.value.code == "MIGRATE_UNSAFE" and src.get(s.vm_id) is not None
    assert not pve.cluster.tasks_of_type("qmigrate")
