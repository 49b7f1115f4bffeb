"""What a VM's host applies for its networks: its NICs (segment, MAC, address) and its firewall, made from the
security groups of its ports. Rules that name another group become that group's port addresses (/32)."""

from __future__ import annotations

from sqlalchemy import select

from agents import FirewallRule, FirewallSpec, HypervisorDriver, NicSpec
from controlplane.core.ipam import with_prefix
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.models import Network, Port, PortSecurityGroup, SecurityRule

ANYWHERE = "0.0.0.0/0"


def vm_ports(vm_id: str) -> list[tuple[Port, Network]]:
    rows = db.session.execute(select(Port, Network).join(Network, Network.id == Port.network_id)
                              .where(Port.vm_id == vm_id).order_by(Port.device_index))
    return [(p, n) for p, n in rows]


def nics_of(vm_id: str) -> tuple[NicSpec, ...]:
    return tuple(NicSpec(port_id=p.id, mac=p.mac, physnet=n.physnet, segment=n.segment,
                         addresses=(with_prefix(p.address, n.cidr),) + ((with_prefix(p.address6, n.cidr6),)
                                                                        if p.address6 and n.cidr6 else ()))
                 for p, n in vm_ports(vm_id))


def group_addresses(group_id: str) -> list[str]:
    rows = db.session.execute(select(Port.address, Port.address6)
                              .join(PortSecurityGroup, PortSecurityGroup.port_id == Port.id)
                              .where(PortSecurityGroup.group_id == group_id, Port.vm_id.is_not(None)))
    out: set[str] = set()
    for v4, v6 in rows:
        out.add(f"{v4}/32")
        if v6:
            out.add(f"{v6}/128")
    return sorted(out)


def firewall_of(vm_id: str) -> FirewallSpec | None:
    """None for a VM without networks (nothing to filter)."""
    ports = [p for p, _n in vm_ports(vm_id)]
    if not ports:
        return None
    groups = set(db.session.execute(select(PortSecurityGroup.group_id).where(
        PortSecurityGroup.port_id.in_([p.id for p in ports]))).scalars())
    rules: set[FirewallRule] = set()
    for rule in db.session.execute(select(SecurityRule).where(SecurityRule.group_id.in_(groups))).scalars():
        sources = group_addresses(rule.remote_group_id) if rule.remote_group_id else [rule.remote_cidr or ANYWHERE]
        for source in sources:
            rules.add(FirewallRule(protocol=rule.protocol, port_min=rule.port_min, port_max=rule.port_max,
                                   source=source))
    ordered = sorted(rules, key=lambda r: (r.protocol, r.port_min or 0, r.port_max or 0, r.source))
    return FirewallSpec(rules=tuple(ordered))


def apply_firewall(drv: HypervisorDriver, vm_id: str, nics: tuple[NicSpec, ...], firewall: FirewallSpec | None,
                   *, rounds: int = 5) -> None:
    """Set the VM's firewall on ``drv``'s host, then read it from the database again and apply once more while it
    changed meanwhile. Whoever applies last has therefore read after applying: a build or a ``host.firewall``
    operation that read the groups before another VM joined cannot leave the older rules in place."""
    for _ in range(rounds):
        if not nics or firewall is None:
            return
        drv.set_firewall(vm_id, nics, firewall)
        with transaction():
            fresh = nics_of(vm_id), firewall_of(vm_id)
        if fresh == (nics, firewall):
            return
        nics, firewall = fresh


def physnets_by_vm(vm_ids: list[str] | None = None) -> dict[str, set[str]]:
    """The physical networks each VM's NICs are on (hosts taking the VM must be attached to them)."""
    stmt = select(Port.vm_id, Network.physnet).join(Network, Network.id == Port.network_id).where(
        Port.vm_id.is_not(None))
    if vm_ids is not None:
        stmt = stmt.where(Port.vm_id.in_(vm_ids))
    out: dict[str, set[str]] = {}
    for vm_id, physnet in db.session.execute(stmt):
        if vm_id is not None:
            out.setdefault(vm_id, set()).add(physnet)
    return out
