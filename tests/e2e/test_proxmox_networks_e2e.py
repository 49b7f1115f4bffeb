"""Issue 14 on Proxmox VE, end to end: API + Celery worker on Redis + the Proxmox simulator.

A municipality's two servers on its network get consecutive addresses, NICs on the segment's VLAN of the
tenants' bridge and the firewall of their security groups, which follows rule changes and a live migration;
another municipality's server on the same subnet gets another segment."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from tests.e2e.pve import pve_sim
from tests.e2e.servers import act, create_server
from tests.e2e.stack import running_stack, setup_tenant

NODES = ["pve1", "pve2"]


def _vm(pve: Any, vm_id: str) -> Any:
    found = [v for v in pve.cluster.vms.values() if vm_id in v.description]
    assert len(found) == 1, found
    return found[0]


def _inbound(pve: Any, vm_id: str) -> set[tuple[str, str, str]]:
    vm = _vm(pve, vm_id)
    return {(str(r.get("proto", "")), str(r.get("dport", "")), str(r.get("source", "")))
            for r in pve.cluster.fw_rules(vm.node, vm.vmid) if r.get("comment") == "confluencia"}


def _until(check: Any, what: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_tenant_networks_on_proxmox(broker_url: str, tmp_path: Path) -> None:
    with pve_sim(NODES, mem_total_mib=16384) as pve, running_stack(tmp_path, broker_url) as stack:
        options = {**pve.options, "networks": "tenants=vmbr1"}
        ids = setup_tenant(stack, [pve.host(n, vcpus=8, ram_mib=16384, disk_gib=500, physnets=["tenants"])
                                   | {"options": options} for n in NODES],
                           {"name": "pve.small", "vcpus": 1, "ram_mib": 1024, "disk_gib": 4})
        token = ids["token"]
        lan = stack.ok("POST", "/v1/networks", token, json={"name": "lan", "cidr": "10.20.0.0/24",
                                                            "dns": ["10.0.0.53"]})
        a = create_server(stack, token, {"name": "a", "flavor": "pve.small", "networks": [{"network": "lan"}]})
        b = create_server(stack, token, {"name": "b", "flavor": "pve.small", "networks": [{"network": "lan"}]})
        assert [a["nics"][0]["address"], b["nics"][0]["address"]] == ["10.20.0.2", "10.20.0.3"]
        net0 = str(_vm(pve, a["id"]).config()["net0"])
        assert re.fullmatch(rf"virtio={a['nics'][0]['mac'].upper()},bridge=vmbr1,firewall=1,tag={lan['segment']}",
                            net0, re.IGNORECASE), net0

        # the default group: members reach each other (a learns b's address once b exists)
        members = {("", "", "10.20.0.2/32"), ("", "", "10.20.0.3/32")}
        _until(lambda: _inbound(pve, a["id"]) == members, "a's rules for the group's members")
        assert _inbound(pve, b["id"]) == members
        stack.ok("POST", "/v1/security-groups/default/rules", token, json={"protocol": "tcp", "port_min": 80})
        _until(lambda: ("tcp", "80", "") in _inbound(pve, a["id"]), "the new rule on a's node")

        # a live migration keeps the address, the NIC and the firewall
        other = next(n for n in NODES if ids[n] != a["host_id"])
        act(stack, stack.operator_token, "POST", f"/v1/vms/{a['id']}/migrate", {"host": other})
        moved = _vm(pve, a["id"])
        assert moved.node == other and str(moved.config()["net0"]) == net0
        assert ("tcp", "80", "") in _inbound(pve, a["id"])

        # another municipality, the same subnet: another segment of the bridge
        stack.ok("POST", "/v1/tenants", json={"slug": "otro", "name": "Otro", "quota_vcpus": 8, "quota_ram_mib": 8192,
                                              "quota_disk_gib": 100, "quota_vms": 4})
        tenants = stack.ok("GET", "/v1/tenants")["items"]
        other_tenant = next(t["id"] for t in tenants if t["slug"] == "otro")
        other_net = stack.ok("POST", "/v1/networks", json={"name": "lan", "cidr": "10.20.0.0/24",
                                                          "tenant_id": other_tenant})
        assert other_net["segment"] != lan["segment"]
        c = create_server(stack, stack.operator_token, {"name": "c", "flavor": "pve.small",
                                                        "tenant_id": other_tenant,
                                                        "networks": [{"network": other_net["id"]}]})
        assert c["nics"][0]["address"] == "10.20.0.2"  # its own segment: the same address is free there
        assert f"tag={other_net['segment']}" in str(_vm(pve, c["id"]).config()["net0"])
        assert ("", "", "10.20.0.2/32") in _inbound(pve, c["id"]) and ("tcp", "80", "") not in _inbound(pve, c["id"])

        for vm, who in ((a, token), (b, token), (c, stack.operator_token)):
            act(stack, who, "DELETE", f"/v1/vms/{vm['id']}")
        assert pve.inventory(NODES) == {}
