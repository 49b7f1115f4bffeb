"""The simulator's NICs, node networks and VM firewall on the wire, as real PVE answers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.proxmox.conftest import Pve

FW = "nodes/pve1/qemu/100/firewall"


def _vm(pve: Pve, vmid: int = 100, node: str = "pve1", **params: str) -> None:
    st = pve.wait_task(pve.data("POST", f"nodes/{node}/qemu", data={"vmid": str(vmid), "memory": "64", **params}))
    assert st["exitstatus"] == "OK"


def _error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.reason)
    return resp.json().get("errors") or {"reason": resp.reason}


# ---- NICs and bridges ----------------------------------------------------------------------------------------
def test_nets_are_stored_normalised_with_a_mac_added(pve: Pve):
    _vm(pve, net0="virtio=52:54:00:ab:cd:01,tag=7,firewall=yes,bridge=vmbr1", net1="e1000,bridge=vmbr0")
    cfg = pve.data("GET", "nodes/pve1/qemu/100/config")
    assert cfg["net0"] == "virtio=52:54:00:ab:cd:01,bridge=vmbr1,firewall=1,tag=7"
    assert cfg["net1"].startswith("e1000=BC:24:11:") and cfg["net1"].endswith(",bridge=vmbr0")
    assert cfg["net1"].split(",")[0] != cfg["net0"].split(",")[0]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("virtio,bridge=vmbr1,tag=4095", "tag: value must have a maximum value of 4094"),
        ("virtio,bridge=vmbr1,tag=0", "tag: value must have a minimum value of 1"),
        ("virtio=01:00:5E:00:00:01,bridge=vmbr1", "value does not look like a valid unicast MAC address"),
        ("virtio=52:54:00:zz:00:01", "value does not look like a valid unicast MAC address"),
        ("virtio,bridge=vm br", "invalid bridge ID"),
        ("bridge=vmbr1", "model: property is missing"),
        ("virtio,speed=10", "speed: property is not defined in schema"),
        ("rtl9999", "does not have a value in the enumeration"),
    ],
)
def test_bad_nets_are_refused(pve: Pve, value: str, error: str):
    _vm(pve)
    errors = _error(pve.raw("PUT", "nodes/pve1/qemu/100/config", data={"net1": value}), 400)
    assert error in errors["net1"]
    assert "property is not defined" in _error(pve.raw("PUT", "nodes/pve1/qemu/100/config",
                                                       data={"net32": "virtio"}), 400)["net32"]


def test_a_guest_on_a_missing_bridge_does_not_start_or_hotplug(pve: Pve):
    _vm(pve, net0="virtio,bridge=vmbr9")
    st = pve.wait_task(pve.data("POST", "nodes/pve1/qemu/100/status/start"))
    assert st["exitstatus"] == "bridge 'vmbr9' does not exist"
    pve.data("PUT", "nodes/pve1/qemu/100/config", data={"net0": "virtio,bridge=vmbr1"})
    assert pve.wait_task(pve.data("POST", "nodes/pve1/qemu/100/status/start"))["exitstatus"] == "OK"
    resp = pve.raw("PUT", "nodes/pve1/qemu/100/config", data={"net1": "virtio,bridge=vmbr9"})
    assert _error(resp, 500)["reason"] == "bridge 'vmbr9' does not exist"


def test_an_online_migration_needs_the_bridge_on_the_target(pve: Pve):
    _vm(pve, net0="virtio,bridge=vmbr1,tag=5")
    pve.wait_task(pve.data("POST", "nodes/pve1/qemu/100/status/start"))
    pve.cluster.nodes["pve2"].bridges = {"vmbr0"}
    st = pve.wait_task(pve.data("POST", "nodes/pve1/qemu/100/migrate", data={"target": "pve2", "online": "1"}))
    assert st["exitstatus"] == "bridge 'vmbr1' does not exist" and pve.cluster.vms[100].node == "pve1"


def test_the_node_network_lists_its_uplink_and_bridges(pve: Pve):
    pve.cluster.nodes["pve2"].bridges.add("vmbr7")
    assert [i["iface"] for i in pve.data("GET", "nodes/pve2/network")] == ["eno1", "vmbr0", "vmbr1", "vmbr7"]
    bridges = pve.data("GET", "nodes/pve2/network", params={"type": "any_bridge"})
    assert [(i["iface"], i["type"], i["bridge_vlan_aware"]) for i in bridges] == [
        ("vmbr0", "bridge", 1), ("vmbr1", "bridge", 1), ("vmbr7", "bridge", 1)]
    pve.cluster.set_node_online("pve3", False)
    assert pve.raw("GET", "nodes/pve3/network").status_code == 595


# ---- rules ---------------------------------------------------------------------------------------------------
def _rules(pve: Pve, path: str = FW) -> list[dict[str, Any]]:
    return list(pve.data("GET", f"{path}/rules"))


def test_rules_go_to_the_top_and_delete_renumbers_with_an_optional_digest(pve: Pve):
    for port in ("22", "80", "443"):
        pve.data("POST", f"{FW}/rules", data={"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": port})
    rules = _rules(pve)
    assert [(r["pos"], r["dport"], r["enable"]) for r in rules] == [(0, "443", 0), (1, "80", 0), (2, "22", 0)]
    assert len({r["digest"] for r in rules}) == 1
    pve.data("DELETE", f"{FW}/rules/1", params={"digest": rules[0]["digest"]})
    assert [(r["pos"], r["dport"]) for r in _rules(pve)] == [(0, "443"), (1, "22")]
    stale = pve.raw("DELETE", f"{FW}/rules/0", params={"digest": rules[0]["digest"]})
    assert "detected modified configuration" in _error(stale, 500)["reason"]
    pve.data("DELETE", f"{FW}/rules/0")
    assert [r["dport"] for r in _rules(pve)] == ["22"]
    assert _error(pve.raw("DELETE", f"{FW}/rules/5"), 500)["reason"] == "no rule at position 5"


@pytest.mark.parametrize(
    ("rule", "param", "error"),
    [
        ({"dport": "22"}, "proto", "missing property - 'dport' requires this property"),
        ({"proto": "tcp", "dport": "90:80"}, "dport", "backwards range '90:80' not allowed"),
        ({"proto": "tcp", "dport": "70000"}, "dport", "invalid port '70000'"),
        ({"proto": "gre", "dport": "1"}, "dport", "protocol 'gre' does not support ports"),
        ({"proto": "nope"}, "proto", "unknown protocol 'nope'"),
        ({"proto": "icmpv6", "source": "10.0.0.0/8"}, "source", "detected mixed ipv4/ipv6 addresses in rule"),
        ({"source": "10.0.0.1,2001:db8::1"}, "source", "detected mixed ipv4/ipv6 addresses in address list"),
        ({"source": "+nosuchset"}, "source", "no such ipset 'nosuchset'"),
        ({"source": "10.0.0.300"}, "source", "invalid IP address"),
        ({"type": "forward"}, "type", "invalid rule type 'forward' for rule_env 'vm'"),
        ({"action": "ALLOW"}, "action", "unknown action 'ALLOW'"),
        ({"iface": "eth0"}, "iface", "value does not match the regex pattern"),
    ],
)
def test_bad_rules_are_refused(pve: Pve, rule: dict[str, str], param: str, error: str):
    form = {"type": "in", "action": "ACCEPT", **rule}
    assert error in _error(pve.raw("POST", f"{FW}/rules", data=form), 400)[param]
    assert _rules(pve) == []


def test_rules_read_back_with_their_ip_version(pve: Pve):
    pve.data("POST", f"{FW}/rules", data={"type": "in", "action": "ACCEPT", "proto": "udp", "dport": "53:54",
                                          "source": "2001:db8::/32", "enable": "1", "comment": "confluencia"})
    rule = _rules(pve)[0]
    assert {k: rule[k] for k in ("type", "action", "proto", "dport", "source", "enable", "comment", "ipversion")} == {
        "type": "in", "action": "ACCEPT", "proto": "udp", "dport": "53:54", "source": "2001:db8::/32",
        "enable": 1, "comment": "confluencia", "ipversion": 6}


# ---- options, IP sets, where the firewall lives -------------------------------------------------------------
def test_options_take_a_digest_and_delete(pve: Pve):
    old = pve.data("GET", f"{FW}/options")
    pve.data("PUT", f"{FW}/options", data={"enable": "1", "policy_in": "DROP", "digest": old["digest"]})
    assert _error(pve.raw("PUT", f"{FW}/options", data={"enable": "0", "digest": old["digest"]}), 500)
    new = pve.data("GET", f"{FW}/options")
    assert new["enable"] == 1 and new["policy_in"] == "DROP" and new["digest"] != old["digest"]
    pve.data("PUT", f"{FW}/options", data={"delete": "policy_in"})
    assert "policy_in" not in pve.data("GET", f"{FW}/options")
    assert "no such option 'bogus'" in _error(pve.raw("PUT", f"{FW}/options", data={"delete": "bogus"}), 400)["delete"]
    pve.cluster.set_node_online("pve2", False)
    assert pve.raw("GET", "nodes/pve2/qemu/100/firewall/options").status_code == 595  # proxied to the node


def test_ipsets_hold_cleaned_entries(pve: Pve):
    pve.data("POST", f"{FW}/ipset", data={"name": "ipfilter-net0", "comment": "confluencia"})
    assert "already exists" in _error(pve.raw("POST", f"{FW}/ipset", data={"name": "ipfilter-net0"}), 400)["name"]
    for cidr in ("10.0.0.5/24", "10.0.0.7/32", "2001:DB8::9/128", "192.0.2.1"):
        pve.data("POST", f"{FW}/ipset/ipfilter-net0", data={"cidr": cidr})
    entries = pve.data("GET", f"{FW}/ipset/ipfilter-net0")
    assert [e["cidr"] for e in entries] == ["192.0.2.1", "2001:db8::9", "10.0.0.7", "10.0.0.0/24"]
    assert "already exists" in _error(pve.raw("POST", f"{FW}/ipset/ipfilter-net0", data={"cidr": "10.0.0.7"}),
                                      400)["cidr"]
    assert "zero prefix" in _error(pve.raw("POST", f"{FW}/ipset/ipfilter-net0", data={"cidr": "0.0.0.0/0"}),
                                   400)["cidr"]
    pve.data("DELETE", f"{FW}/ipset/ipfilter-net0/2001%3Adb8%3A%3A9")
    assert len(pve.data("GET", f"{FW}/ipset/ipfilter-net0")) == 3
    assert pve.data("GET", f"{FW}/ipset") == [{"name": "ipfilter-net0", "comment": "confluencia",
                                               "digest": pve.data("GET", f"{FW}/ipset")[0]["digest"]}]
    assert "is not empty" in _error(pve.raw("DELETE", f"{FW}/ipset/ipfilter-net0"), 500)["reason"]
    pve.data("DELETE", f"{FW}/ipset/ipfilter-net0", params={"force": "1"})
    assert "no such IPSet" in _error(pve.raw("GET", f"{FW}/ipset/ipfilter-net0"), 500)["reason"]


def test_the_firewall_is_keyed_by_vmid_cloned_with_its_vm_and_removed_with_it(pve: Pve):
    pve.data("POST", "nodes/pve1/qemu/9000/firewall/rules", data={"type": "in", "action": "DROP", "comment": "t"})
    pve.wait_task(pve.data("POST", "nodes/pve1/qemu/9000/clone", data={"newid": "101", "name": "c", "full": "1"}))
    assert [r["comment"] for r in _rules(pve, "nodes/pve1/qemu/101/firewall")] == ["t"]
    assert _rules(pve, "nodes/pve3/qemu/101/firewall") == _rules(pve, "nodes/pve1/qemu/101/firewall")
    pve.wait_task(pve.data("DELETE", "nodes/pve1/qemu/101"))
    assert 101 not in pve.cluster.firewalls and _rules(pve, "nodes/pve1/qemu/101/firewall") == []
