"""Issue 14 on the libvirt lab, end to end: API + Celery worker on Redis + real session daemons, bridges and
nftables, real guests that probe each other (``/etc/confluencia/probes`` from their user data, results on their
serial consoles).

Through the API: two servers of one municipality on different lab hosts reach each other on their allocated
addresses; a server of another municipality on the same subnet (its own segment) cannot reach them, and its
failed probes show it tried; a server in a group without rules is closed to its neighbour until a rule opens
TCP port 7, and closed again when the rule is removed; a live migration keeps the address and the connectivity."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agents.libvirt_lab_storage import LOCAL_POOL, SHARED_POOL
from tests.e2e.servers import act, import_image, server_env
from tests.e2e.stack import Stack, free_port, running_stack, setup_tenant
from tests.lab.guest_console import GuestReport, SerialLog
from tests.lab.guest_image import guest_image_for
from tests.lab.session import driver_options, host, lab_for

pytestmark = [pytest.mark.libvirt, pytest.mark.slow]

BOOT_S, WAIT_S = 150.0, 60.0  # four TCG guests boot at once on two cores


def probes_user_data(lines: list[str]) -> str:
    body = "".join(f"      {line}\n" for line in lines)
    return f"#cloud-config\nwrite_files:\n  - path: /etc/confluencia/probes\n    content: |\n{body}"


class Guest:
    def __init__(self, stack: Stack, token: str, vm: dict[str, Any], shared_dir: str) -> None:
        self.stack, self.token, self.vm, self.shared_dir = stack, token, vm, shared_dir

    @property
    def address(self) -> str:
        return str(self.vm["nics"][0]["address"])

    def report(self) -> GuestReport:
        return SerialLog(os.path.join(self.shared_dir, f"{self.vm['id']}-console.log")).report()

    def wait(self, condition: Callable[[GuestReport], bool], what: str, timeout_s: float = WAIT_S) -> GuestReport:
        log = SerialLog(os.path.join(self.shared_dir, f"{self.vm['id']}-console.log"))
        return log.wait(condition, timeout_s=timeout_s, what=f"{self.vm['name']}: {what}")

    def probe_goes(self, target: str, ok: bool, rounds: int = 2) -> None:
        """From the next round on, ``rounds`` results of ``target`` in a row are ``ok`` (reached) or not."""
        after = self.report().last_probe_round

        def settled(r: GuestReport) -> bool:
            recent = [good for rnd, good in r.probes(target) if rnd > after]
            return len(recent) >= rounds and all(g == ok for g in recent[-rounds:])

        self.wait(settled, f"{target} {'reached' if ok else 'unreachable'} for {rounds} rounds")


def test_tenant_networks_on_the_libvirt_lab(request: pytest.FixtureRequest, broker_url: str, tmp_path: Path) -> None:
    from agents.libvirt_driver import LibvirtDriver

    lab = lab_for(request.config)
    guest_image = guest_image_for(request.config)
    lab_hosts = [host(lab, 1), host(lab, 2)]
    env = {**server_env(tmp_path, free_port()), "CONFLUENCIA_SEGMENT_RANGE": "1-6"}  # the lab's bridges
    with running_stack(tmp_path, broker_url, env) as stack:
        stack.ok("POST", "/v1/storage-pools", json={"name": SHARED_POOL, "kind": "shared", "capacity_gib": 100,
                                                    "is_default": True})
        stack.ok("POST", "/v1/storage-pools", json={"name": LOCAL_POOL, "kind": "local"})
        ids = setup_tenant(stack, [
            {"name": h.name, "driver": "libvirt", "uri": h.uri, "options": driver_options(h), "vcpus": 4,
             "ram_mib": 1024, "disk_gib": 20, "cpu_ratio": 1.0, "storage_pools": [SHARED_POOL],
             "physnets": ["tenants"]} for h in lab_hosts
        ], {"name": "lab.guest", "vcpus": 1, "ram_mib": 128, "disk_gib": 1})
        shared_dir = LibvirtDriver(lab_hosts[0].uri, **driver_options(lab_hosts[0])).opts.storage.dir_of(SHARED_POOL)
        image = import_image(stack, guest_image.path, tmp_path, "guest", 1, format="qcow2")
        token = ids["token"]
        stack.ok("POST", "/v1/networks", token, json={"name": "lan", "cidr": "10.20.0.0/24"})
        stack.ok("POST", "/v1/security-groups", token, json={"name": "web"})
        stack.ok("POST", "/v1/tenants", json={"slug": "vecino", "name": "Municipio Vecino", "quota_vcpus": 4,
                                              "quota_ram_mib": 4096, "quota_disk_gib": 20, "quota_vms": 2})
        neighbour = next(t["id"] for t in stack.ok("GET", "/v1/tenants")["items"] if t["slug"] == "vecino")
        other_lan = stack.ok("POST", "/v1/networks", json={"name": "lan", "cidr": "10.20.0.0/24",
                                                          "tenant_id": neighbour})
        # addresses are handed out in order: a .2, b .3, c (group web) .4; the neighbour's d is .2 on its segment
        a_ip, b_ip, c_ip = "10.20.0.2", "10.20.0.3", "10.20.0.4"

        def server(name: str, who: str, body: dict[str, Any]) -> dict[str, Any]:
            return stack.ok("POST", "/v1/vms", who, json={"name": name, "flavor": "lab.guest", "image": image["name"],
                                                          **body})

        op_token, tenant = stack.operator_token, ids["tenant"]
        accepted = {  # a and b on different lab hosts (an operator's placement), of the same municipality
            "a": server("a", op_token, {"networks": [{"network": "lan"}], "tenant_id": tenant,
                                        "host": lab_hosts[0].name}),
            "b": server("b", op_token, {"networks": [{"network": "lan"}], "tenant_id": tenant,
                                        "host": lab_hosts[1].name,
                                        "user_data": probes_user_data([f"ping {a_ip}", f"tcp {a_ip} 7",
                                                                       f"tcp {c_ip} 7"])}),
            "c": server("c", token, {"networks": [{"network": "lan"}], "security_groups": ["web"]}),
            "d": server("d", stack.operator_token, {"tenant_id": neighbour, "networks": [{"network": other_lan["id"]}],
                                                    "user_data": probes_user_data([f"ping {b_ip}",
                                                                                   f"tcp {b_ip} 7"])}),
        }
        guests: dict[str, Guest] = {}
        for name, reply in accepted.items():
            who = token if name == "c" else op_token
            op = stack.wait_op(reply["operation_id"], who, timeout=BOOT_S)
            assert op["status"] == "succeeded", (name, op, stack.log_tail("worker"))
            guests[name] = Guest(stack, who, stack.ok("GET", f"/v1/vms/{reply['vm']['id']}", who), shared_dir)
        assert [guests[n].address for n in "abcd"] == [a_ip, b_ip, c_ip, "10.20.0.2"]
        assert guests["a"].vm["host_id"] != guests["b"].vm["host_id"]
        for g in guests.values():
            report = g.wait(lambda r: r.ready, "ready", BOOT_S)
            assert report.address == f"{g.address}/24"

        b, d = guests["b"], guests["d"]
        b.probe_goes(f"ping:{a_ip}", True)  # one municipality, one segment: reached across hosts
        b.probe_goes(f"tcp:{a_ip}:7", True)
        d.probe_goes(f"ping:{b_ip}", False, rounds=3)  # the neighbour's segment: nothing there, and it tried
        d.probe_goes(f"tcp:{b_ip}:7", False, rounds=3)

        b.probe_goes(f"tcp:{c_ip}:7", False)  # c is in web, which has no rule yet
        rule = stack.ok("POST", "/v1/security-groups/web/rules", token, json={"protocol": "tcp", "port_min": 7})
        b.probe_goes(f"tcp:{c_ip}:7", True)
        stack.call("DELETE", f"/v1/security-groups/web/rules/{rule['id']}", token)
        b.probe_goes(f"tcp:{c_ip}:7", False)

        a = guests["a"]
        target = next(h for h in (ids[x.name] for x in lab_hosts) if h != a.vm["host_id"])
        act(stack, stack.operator_token, "POST", f"/v1/vms/{a.vm['id']}/migrate", {"host": target})
        moved = stack.ok("GET", f"/v1/vms/{a.vm['id']}", token)
        assert moved["host_id"] == target and moved["nics"][0]["address"] == a_ip
        b.probe_goes(f"ping:{a_ip}", True)
        b.probe_goes(f"tcp:{a_ip}:7", True)
        assert len(a.report().all("kernel")) == 1, "the guest went on without a restart"

        for g in guests.values():
            act(stack, g.token, "DELETE", f"/v1/vms/{g.vm['id']}")
