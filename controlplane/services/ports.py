"""Ports: an address of a network for a VM's NIC. Allocated in the same transaction as the VM's claim, under
the network's row lock (two requests never get the same address; the database's unique constraint is the
last guard), released when the VM is deleted; a port reserved on its own (``POST /v1/ports``) keeps its
fixed address until it is deleted, and a VM request may name it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from controlplane.context import Principal
from controlplane.core import ipam
from controlplane.core.audit import audited, created
from controlplane.core.quotas import lock_tenant
from controlplane.core.tx import paginate, transaction
from controlplane.db import db
from controlplane.errors import Conflict, Forbidden, Msg, QuotaExceeded, ValidationFailed, not_found
from controlplane.models import Network, Port, PortSecurityGroup, SecurityGroup, Tenant
from controlplane.services.networks import usable_network

MAX_NICS = 4


def check_address_quota(tenant: Tenant, more: int) -> None:
    used = db.session.execute(select(func.count()).select_from(Port).where(Port.tenant_id == tenant.id)).scalar_one()
    if used + more > tenant.quota_addresses:
        raise QuotaExceeded(Msg(f"{tenant.name} holds {used} addresses of {tenant.quota_addresses} allowed.",
                                f"{tenant.name} tiene {used} direcciones de {tenant.quota_addresses} permitidas."),
                            quota={"addresses": {"limit": tenant.quota_addresses, "used": int(used),
                                                 "requested": more,
                                                 "available": max(tenant.quota_addresses - used, 0)}})


def allocate(net: Network, tenant_id: str, *, address: str | None = None, created_by: str | None = None,
             reserved: bool = False, name: str | None = None, field: str = "address") -> Port:
    """A new port of ``net`` with the requested or the next free address (in the caller's transaction)."""
    db.session.execute(select(Network.id).where(Network.id == net.id).with_for_update())  # one allocator per network
    sub = ipam.subnet(net.cidr, net.gateway, net.alloc_start, net.alloc_end)
    used = set(db.session.execute(select(Port.address).where(Port.network_id == net.id)).scalars())
    if address is not None:
        wanted = ipam.parse_address(address, field)
        if not sub.contains(wanted):
            raise ValidationFailed(Msg(f"{wanted} is not a usable address of {net.cidr} (network {net.name!r}).",
                                       f"{wanted} no es una dirección utilizable de {net.cidr} (red {net.name!r})."),
                                   errors={field: ["Outside the subnet, or its network, gateway or broadcast."]})
        if str(wanted) in used:
            raise Conflict(Msg(f"{wanted} is taken on network {net.name!r}.",
                               f"{wanted} ya está en uso en la red {net.name!r}."), address=str(wanted))
        chosen = str(wanted)
    else:
        free = ipam.next_free(sub, used)
        if free is None:
            raise Conflict(Msg(f"Network {net.name!r} has no free address left in {sub.start}-{sub.end}.",
                               f"La red {net.name!r} no tiene direcciones libres en {sub.start}-{sub.end}."))
        chosen = free
    macs = set(db.session.execute(select(Port.mac).where(Port.network_id == net.id)).scalars())
    mac = ipam.new_mac()
    while mac in macs:
        mac = ipam.new_mac()
    port = Port(network_id=net.id, tenant_id=tenant_id, mac=mac, address=chosen, reserved=reserved, name=name,
                created_by=created_by, address6=ipam.eui64(net.cidr6, mac) if net.cidr6 else None)
    db.session.add(port)
    db.session.flush()
    return port


def join_groups(port: Port, groups: list[SecurityGroup]) -> None:
    for group in groups:
        db.session.add(PortSecurityGroup(port_id=port.id, group_id=group.id))


def create_port(actor: Principal, data: dict[str, Any]) -> Port:
    """Reserve an address (a port of its own that a VM request can name; kept when that VM is deleted)."""
    tenant_id = actor.tenant_id if not actor.is_operator else data.get("tenant_id")
    if not tenant_id:
        raise ValidationFailed("Operators must say for which municipality (tenant_id).",
                               errors={"tenant_id": ["Required for operators."]})
    with transaction(keep_loaded=True):
        tenant = lock_tenant(tenant_id)
        check_address_quota(tenant, 1)
        net = usable_network(tenant.id, data["network"], "network")
        port = allocate(net, tenant.id, address=data.get("address"), created_by=actor.user_id, reserved=True,
                        name=data.get("name"))
        created(actor, "port.create", port)
    return port


def get_port(actor: Principal, port_id: str) -> Port:
    port = db.session.get(Port, port_id)
    if port is None or not actor.can_see_tenant(port.tenant_id):
        raise not_found("port", port_id)
    return port


def list_ports(actor: Principal, *, network_id: str | None = None, vm_id: str | None = None,
               tenant_id: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[Port], int]:
    stmt = select(Port).order_by(Port.created_at, Port.id)
    if not actor.is_operator:
        stmt = stmt.where(Port.tenant_id == actor.tenant_id)
    elif tenant_id:
        stmt = stmt.where(Port.tenant_id == tenant_id)
    if network_id:
        stmt = stmt.where(Port.network_id == network_id)
    if vm_id:
        stmt = stmt.where(Port.vm_id == vm_id)
    return paginate(stmt, limit, offset)


def delete_port(actor: Principal, port_id: str) -> None:
    with transaction():
        port = get_port(actor, port_id)
        if not (actor.is_operator or actor.is_tenant_admin or port.created_by == actor.user_id):
            raise Forbidden(Msg("Members may only delete the ports they created.",
                                "Los miembros solo pueden borrar los puertos que crearon."))
        if port.vm_id is not None:
            raise Conflict(Msg(f"Port {port.address} is in use by VM {port.vm_id}; delete the VM first.",
                               f"El puerto {port.address} lo usa la VM {port.vm_id}; borre antes la VM."))
        with audited(actor, "port.delete", port) as change:
            change.removed = True
            db.session.delete(port)


def release_in_tx(vm_id: str) -> None:
    """The VM is gone: its ports go with it, but for reserved ones, which keep their address."""
    for port in db.session.execute(select(Port).where(Port.vm_id == vm_id)).scalars():
        if port.reserved:
            port.vm_id, port.device_index = None, None
        else:
            db.session.delete(port)


def ports_of(vm_id: str) -> list[Port]:
    return list(db.session.execute(select(Port).where(Port.vm_id == vm_id).order_by(Port.device_index)).scalars())
