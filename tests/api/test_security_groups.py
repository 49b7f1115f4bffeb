"""/v1/security-groups on the simulated data center: what each host is told to apply, live when rules or
members change, and the refusals."""

from __future__ import annotations

from typing import Any

import pytest

from agents.simulated import open_datacenter
from agents.simulated_networks import firewall_of
from tests.api.test_errors_common import assert_problem, db_state
from tests.api.test_networks import lan, network, physnets, server  # noqa: F401 (fixture)
from tests.conftest import World, wait_for


def applied(world: World, vm: dict[str, Any]) -> set[tuple[str, int | None, int | None, str]]:
    """The inbound rules the VM's host was told to apply for it."""
    host = next(n for n, i in world.hosts.items() if i == vm["host_id"])
    with open_datacenter().read() as tx:
        spec = firewall_of(tx, host, vm["id"])
    assert spec is not None, f"no firewall for {vm['name']} on {host}"
    rules = spec["firewall"]["rules"]  # type: ignore[index]
    return {(r["protocol"], r["port_min"], r["port_max"], r["source"]) for r in rules}


def settled(world: World) -> None:
    """Every host.firewall operation sent so far is over."""
    def over() -> bool:
        ops = world.operator.get("/v1/operations?kind=host.firewall&limit=500").get_json()["items"]
        return all(o["status"] in ("succeeded", "failed") for o in ops)

    wait_for(over, what="the host firewall operations")


def test_the_default_group_lets_members_in_and_a_rule_opens_a_port_live(world: World, lan: dict[str, Any]):  # noqa: F811
    a = server(world.admin_a, name="a", networks=[{"network": "lan"}])
    assert applied(world, a) == {("any", None, None, "10.20.0.2/32")}  # only itself so far
    b = server(world.admin_a, name="b", networks=[{"network": "lan"}])
    settled(world)
    members = {("any", None, None, "10.20.0.2/32"), ("any", None, None, "10.20.0.3/32")}
    assert applied(world, a) == members and applied(world, b) == members  # a learnt of b without a restart
    r = world.admin_a.post("/v1/security-groups", json={"name": "web", "description": "servidores web"})
    assert r.status_code == 201, r.get_json()
    web = server(world.admin_a, name="web", networks=[{"network": "lan"}], security_groups=["web"])
    assert applied(world, web) == set()  # nothing comes in
    rule = world.admin_a.post("/v1/security-groups/web/rules", json={"protocol": "tcp", "port_min": 80})
    assert rule.status_code == 201, rule.get_json()
    settled(world)
    assert applied(world, web) == {("tcp", 80, 80, "0.0.0.0/0")}
    world.admin_a.post("/v1/security-groups/web/rules", json={"protocol": "tcp", "port_min": 8000, "port_max": 8080,
                                                              "remote_cidr": "10.20.0.0/24"})
    settled(world)
    assert applied(world, web) == {("tcp", 80, 80, "0.0.0.0/0"), ("tcp", 8000, 8080, "10.20.0.0/24")}
    assert world.admin_a.delete(f"/v1/security-groups/web/rules/{rule.get_json()['id']}").status_code == 204
    settled(world)
    assert applied(world, web) == {("tcp", 8000, 8080, "10.20.0.0/24")}
    world.admin_a.wait_op(world.admin_a.delete(f"/v1/vms/{b['id']}").get_json()["id"])
    settled(world)
    assert applied(world, a) == {("any", None, None, "10.20.0.2/32")}  # b's address left the group
    actions = {e["action"] for e in world.admin_a.get("/v1/audit?action=security_group.").get_json()["items"]}
    assert {"security_group.create", "security_group.rule.add", "security_group.rule.delete"} <= actions


def test_a_migration_moves_the_firewall_with_the_vm(world: World, lan: dict[str, Any]):  # noqa: F811
    vm = server(world.admin_a, name="a", networks=[{"network": "lan"}])
    source = next(n for n, i in world.hosts.items() if i == vm["host_id"])
    target = next(n for n in world.hosts if n != source)
    op = world.operator.post(f"/v1/vms/{vm['id']}/migrate", json={"host": target}).get_json()
    assert world.operator.wait_op(op["id"])["status"] == "succeeded"
    moved = world.admin_a.get(f"/v1/vms/{vm['id']}").get_json()
    assert applied(world, moved) == {("any", None, None, "10.20.0.2/32")}
    with open_datacenter().read() as tx:
        assert firewall_of(tx, source, vm["id"]) is None  # taken off the host it left


@pytest.mark.parametrize("rule, field", [
    ({"protocol": "tcp", "port_min": 0}, "port_max"),
    ({"protocol": "tcp", "port_min": 90, "port_max": 80}, "port_max"),
    ({"protocol": "udp", "port_min": 70000}, "port_max"),
    ({"protocol": "tcp", "port_max": 80}, "port_min"),
    ({"protocol": "icmp", "port_min": 8}, "port_min"),
    ({"protocol": "sctp"}, "protocol"),
    ({"protocol": "tcp", "port_min": 22, "remote_cidr": "10.0.0.1/8"}, "remote_cidr"),
    ({"protocol": "tcp", "port_min": 22, "remote_cidr": "not-a-net"}, "remote_cidr"),
    ({"protocol": "tcp", "port_min": 22, "remote_group": "nope"}, "remote_group"),
    ({"protocol": "tcp", "port_min": 22, "remote_group": "default", "remote_cidr": "10.0.0.0/8"}, "remote_group"),
])
def test_bad_rules_are_refused(app: Any, world: World, rule: dict[str, Any], field: str):
    assert world.admin_a.post("/v1/security-groups", json={"name": "g"}).status_code == 201
    before = db_state(app)
    problem = assert_problem(world.admin_a.post("/v1/security-groups/g/rules", json=rule), 422)
    assert field in problem["errors"], problem
    assert db_state(app) == before


def test_groups_in_use_and_other_municipalities_groups(app: Any, world: World, lan: dict[str, Any]):  # noqa: F811
    world.admin_a.post("/v1/security-groups", json={"name": "db"})
    server(world.admin_a, name="a", networks=[{"network": "lan"}], security_groups=["db"])
    before = db_state(app)
    assert_problem(world.admin_a.delete("/v1/security-groups/db"), 409, "conflict")
    assert_problem(world.admin_a.delete("/v1/security-groups/default"), 409, "conflict")
    assert_problem(world.admin_b.get("/v1/security-groups/db"), 404)
    assert_problem(world.admin_b.post("/v1/security-groups/db/rules", json={"protocol": "icmp"}), 404)
    assert_problem(world.member_a.post("/v1/security-groups/db/rules", json={"protocol": "icmp"}), 403)
    assert db_state(app) == before


def test_a_firewall_read_before_another_vm_joined_is_not_left_on_the_host(app: Any, world: World,
                                                                           lan: dict[str, Any]):  # noqa: F811
    """A build (or host.firewall operation) that read the groups before b joined and applies after b's own
    update must not leave a's older rules in place: the applier reads again after applying."""
    from agents import FirewallRule, FirewallSpec
    from controlplane.core.drivers import driver_for
    from controlplane.core.firewall import apply_firewall, nics_of
    from controlplane.core.tx import transaction
    from controlplane.db import db
    from controlplane.models import Host

    a = server(world.admin_a, name="a", networks=[{"network": "lan"}])
    server(world.admin_a, name="b", networks=[{"network": "lan"}])
    settled(world)
    members = {("any", None, None, "10.20.0.2/32"), ("any", None, None, "10.20.0.3/32")}
    assert applied(world, a) == members
    with app.app_context():
        with transaction():
            drv, nics = driver_for(db.session.get(Host, a["host_id"])), nics_of(a["id"])
        stale = FirewallSpec(rules=(FirewallRule(protocol="any", source="10.20.0.2/32"),))  # before b joined
        apply_firewall(drv, a["id"], nics, stale)
    assert applied(world, a) == members
