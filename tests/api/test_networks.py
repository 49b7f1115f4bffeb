"""/v1/networks, /v1/ports and VM NICs on the simulated data center: subnets, segments, overlap rules, provider
networks and grants, address allocation and reservation, and every refusal changing nothing."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from tests.api.test_errors_common import assert_problem, db_state
from tests.api.test_storage_pools import image
from tests.conftest import World


def physnets(world: World, names: list[str], hosts: tuple[str, ...] = ("hv1", "hv2", "hv3")) -> None:
    for host in hosts:
        etag = world.operator.get(f"/v1/hosts/{host}").headers["ETag"]
        r = world.operator.patch(f"/v1/hosts/{host}", json={"physnets": names}, headers={"If-Match": etag})
        assert r.status_code == 200 and r.get_json()["physnets"] == sorted(names), r.get_json()


def network(caller: Any, name: str = "lan", cidr: str = "10.20.0.0/24", **kw: Any) -> dict[str, Any]:
    r = caller.post("/v1/networks", json={"name": name, "cidr": cidr, **kw})
    assert r.status_code == 201, r.get_json()
    return dict(r.get_json())


def server(caller: Any, **body: Any) -> dict[str, Any]:
    r = caller.post("/v1/vms", json={"flavor": "small", "image": "base", **body})
    assert r.status_code == 202, r.get_json()
    assert caller.wait_op(r.get_json()["operation_id"])["status"] == "succeeded"
    return dict(caller.get(f"/v1/vms/{r.get_json()['vm']['id']}").get_json())


@pytest.fixture
def lan(world: World, image_dirs: tuple[str, str]) -> dict[str, Any]:
    image(world, image_dirs)
    physnets(world, ["tenants"])
    return network(world.admin_a, dns=["10.0.0.53"])


def test_a_private_network_gets_its_own_segment_and_defaults(world: World, lan: dict[str, Any]):
    assert (lan["kind"], lan["physnet"], lan["gateway"]) == ("private", "tenants", "10.20.0.1")
    assert (lan["allocation_start"], lan["allocation_end"], lan["dns"]) == ("10.20.0.2", "10.20.0.254", ["10.0.0.53"])
    other = network(world.admin_b, "lan-b", "10.20.0.0/24")  # the same subnet in another municipality: isolated
    assert other["segment"] != lan["segment"] and 100 <= other["segment"] <= 3999
    assert [n["name"] for n in world.admin_b.get("/v1/networks").get_json()["items"]] == ["lan-b"]
    assert_problem(world.admin_b.get(f"/v1/networks/{lan['id']}"), 404)


def test_vms_get_the_next_free_addresses_in_their_seed_and_give_them_back(world: World, lan: dict[str, Any]):
    from agents.simulated import open_datacenter

    a = server(world.admin_a, name="a", networks=[{"network": "lan"}])
    b = server(world.admin_a, name="b", networks=[{"network": lan["id"], "address": "10.20.0.50"}])
    assert [n["address"] for n in a["nics"]] == ["10.20.0.2"]  # .1 is the gateway
    assert [n["address"] for n in b["nics"]] == ["10.20.0.50"]
    with open_datacenter().read() as tx:
        doms = [tx.domain(h, a["id"]) for h in tx.host_names()]
    seed = next(d for d in doms if d is not None).metadata["cloud_init"]
    assert '"address": "10.20.0.2/24"' in seed and '"gateway": "10.20.0.1"' in seed and a["nics"][0]["mac"] in seed
    world.admin_a.wait_op(world.admin_a.delete(f"/v1/vms/{a['id']}").get_json()["id"])
    c = server(world.admin_a, name="c", networks=[{"network": "lan"}])
    assert [n["address"] for n in c["nics"]] == ["10.20.0.2"]  # freed with its VM
    quota = world.admin_a.get("/v1/quota").get_json()
    assert quota["addresses"]["used"] == 2 and quota["networks"]["used"] == 1


def test_a_reserved_address_outlives_its_vm(world: World, lan: dict[str, Any]):
    r = world.admin_a.post("/v1/ports", json={"network": "lan", "address": "10.20.0.100", "name": "dns-interno"})
    assert r.status_code == 201, r.get_json()
    port = r.get_json()
    vm = server(world.admin_a, name="dns", networks=[{"port": port["id"]}])
    assert vm["nics"][0]["address"] == "10.20.0.100"
    world.admin_a.wait_op(world.admin_a.delete(f"/v1/vms/{vm['id']}").get_json()["id"])
    kept = world.admin_a.get(f"/v1/ports/{port['id']}").get_json()
    assert (kept["address"], kept["vm_id"], kept["reserved"]) == ("10.20.0.100", None, True)
    assert world.admin_a.delete(f"/v1/ports/{port['id']}").status_code == 204


def test_placement_only_uses_hosts_on_the_networks_physnet(app: Any, world: World, lan: dict[str, Any]):
    physnets(world, ["tenants"], ("hv2",))
    physnets(world, [], ("hv1", "hv3"))
    vm = server(world.admin_a, name="a", networks=[{"network": "lan"}])
    assert vm["host_id"] == world.hosts["hv2"]
    physnets(world, [], ("hv2",))
    before = db_state(app)
    problem = assert_problem(world.admin_a.post("/v1/vms", json={"name": "b", "flavor": "small", "image": "base",
                                                                 "networks": [{"network": "lan"}]}),
                             409, "insufficient-capacity")
    assert "network" in problem["detail"]
    assert db_state(app) == before


def test_provider_networks_are_granted_to_chosen_municipalities(app: Any, world: World, lan: dict[str, Any]):
    physnets(world, ["tenants", "servicios"])
    shared = network(world.operator, "servicios-municipales", "172.16.0.0/22", kind="provider", physnet="servicios",
                     segment=50)
    assert_problem(world.admin_a.post("/v1/vms", json={"name": "x", "flavor": "small", "image": "base",
                                                       "networks": [{"network": shared["id"]}]}), 422)
    r = world.operator.post(f"/v1/networks/{shared['id']}/grants", json={"tenant_id": world.tenant_a})
    assert r.status_code == 200 and r.get_json()["granted_to"] == [world.tenant_a]
    vm = server(world.admin_a, name="x", networks=[{"network": "lan"}, {"network": "servicios-municipales"}])
    assert [n["address"] for n in vm["nics"]] == ["10.20.0.2", "172.16.0.2"]
    assert [n["name"] for n in world.admin_b.get("/v1/networks").get_json()["items"]] == []
    network(world.admin_b, "overlaps-provider", "172.16.1.0/24")  # B was not granted it: no conflict
    before = db_state(app)
    problem = assert_problem(world.operator.post(f"/v1/networks/{shared['id']}/grants",
                                                 json={"tenant_id": world.tenant_b}), 409, "conflict")
    assert "overlaps" in problem["detail"]
    assert_problem(world.operator.delete(f"/v1/networks/{shared['id']}/grants/{world.tenant_a}"), 409)  # in use
    assert db_state(app) == before


@pytest.mark.parametrize("payload, status, field", [
    ({"name": "n2", "cidr": "10.20.0.128/25"}, 409, None),  # overlaps lan in the same municipality
    ({"name": "n2", "cidr": "10.30.0.0/30"}, 422, "cidr"),  # too small
    ({"name": "n2", "cidr": "10.30.0.1/24"}, 422, "cidr"),  # host bits set
    ({"name": "n2", "cidr": "banana"}, 422, "cidr"),
    ({"name": "n2", "cidr": "fd00::/64"}, 422, "cidr"),
    ({"name": "n2", "cidr": "10.30.0.0/24", "gateway": "10.31.0.1"}, 422, "gateway"),
    ({"name": "n2", "cidr": "10.30.0.0/24", "allocation_start": "10.30.0.200", "allocation_end": "10.30.0.100"},
     422, "allocation_start"),
    ({"name": "n2", "cidr": "10.30.0.0/24", "dns": ["dns.example"]}, 422, "dns"),
    ({"name": "n2", "cidr": "10.30.0.0/24", "segment": 7}, 422, "segment"),  # municipalities get one assigned
])
def test_bad_networks_are_refused(app: Any, world: World, lan: dict[str, Any], payload: dict[str, Any], status: int,
                                  field: str | None):
    before = db_state(app)
    problem = assert_problem(world.admin_a.post("/v1/networks", json=payload), status)
    if field:
        assert field in problem["errors"], problem
    assert db_state(app) == before


def test_bad_addresses_and_foreign_networks_are_refused(app: Any, world: World, lan: dict[str, Any]):
    server(world.admin_a, name="a", networks=[{"network": "lan", "address": "10.20.0.9"}])
    other = network(world.admin_b, "lan-b", "10.40.0.0/24")
    before = db_state(app)
    cases = [
        ({"networks": [{"network": "lan", "address": "10.20.1.9"}]}, 422),  # outside the subnet
        ({"networks": [{"network": "lan", "address": "10.20.0.255"}]}, 422),  # the broadcast address
        ({"networks": [{"network": "lan", "address": "10.20.0.1"}]}, 422),  # the gateway
        ({"networks": [{"network": "lan", "address": "10.20.0.9"}]}, 409),  # taken
        ({"networks": [{"network": other["id"]}]}, 422),  # another municipality's network
        ({"networks": [{"network": "lan"}, {"network": "lan"}]}, 422),
        ({"networks": [{"network": "lan"}], "network": {"address": "10.0.0.5/24"}}, 422),
        ({"networks": [{"network": "lan"}], "security_groups": ["nope"]}, 422),
    ]
    for extra, status in cases:
        assert_problem(world.admin_a.post("/v1/vms", json={"name": "x", "flavor": "small", "image": "base",
                                                           **extra}), status)
    assert_problem(world.admin_a.delete(f"/v1/networks/{lan['id']}"), 409, "conflict")  # it still has a port
    assert_problem(world.member_a.post("/v1/networks", json={"name": "m", "cidr": "10.9.0.0/24"}), 403)
    assert db_state(app) == before


def test_an_ipv6_subnet_gives_every_port_its_eui64_address(app: Any, world: World, image_dirs):
    from agents.simulated import open_datacenter
    from agents.simulated_networks import firewall_of

    image(world, image_dirs)
    physnets(world, ["tenants"])
    net = network(world.admin_a, "dual", "10.50.0.0/24", cidr6="fd00:50::/64", gateway6="fd00:50::1")
    vm = server(world.admin_a, name="v6", networks=[{"network": "dual"}])
    nic = vm["nics"][0]
    mac = bytes(int(b, 16) for b in nic["mac"].split(":"))  # RFC 4291 appendix A: flip U/L, insert ff:fe
    iid = bytes([mac[0] ^ 2]) + mac[1:3] + b"\xff\xfe" + mac[3:]
    assert nic["address6"] == str(ipaddress.IPv6Address(bytes(8) + iid) + int(ipaddress.IPv6Address("fd00:50::")))
    host = next(n for n, i in world.hosts.items() if i == vm["host_id"])
    with open_datacenter().read() as tx:
        seed = tx.domain(host, vm["id"]).metadata["cloud_init"]
        fw = firewall_of(tx, host, vm["id"])
    assert f'"address6": "{nic["address6"]}/64"' in seed and '"gateway6": "fd00:50::1"' in seed
    assert fw is not None and f"{nic['address6']}/64" in fw["nics"][0]["addresses"]  # type: ignore[index]
    assert {r["source"] for r in fw["firewall"]["rules"]} == {"10.50.0.2/32", f"{nic['address6']}/128"}  # type: ignore[index]
    before = db_state(app)
    problem = assert_problem(world.admin_a.post("/v1/networks", json={"name": "x", "cidr": "10.60.0.0/24",
                                                                      "cidr6": "fd00:60::/48"}), 422)
    assert "cidr6" in problem["errors"] and net["cidr6"] == "fd00:50::/64"
    assert db_state(app) == before


def test_the_seed_and_proxmox_carry_both_families():
    from agents.base import CloudInit, NetConfig
    from agents.cloudinit import network_config
    from agents.proxmox_cloudinit import ipconfig

    net = NetConfig(address="10.0.0.5/24", gateway="10.0.0.1", mac="52:54:00:aa:bb:cc",
                    address6="fd00::5054:ff:feaa:bbcc/64", gateway6="fd00::1")
    text = network_config(CloudInit(hostname="h", instance_id="i", networks=(net,)))
    assert "- 10.0.0.5/24\n" in text and "- fd00::5054:ff:feaa:bbcc/64\n" in text and "via: fd00::1" in text
    assert ipconfig(net) == "ip=10.0.0.5/24,gw=10.0.0.1,ip6=fd00::5054:ff:feaa:bbcc/64,gw6=fd00::1"
