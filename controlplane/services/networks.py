"""Networks: a municipality's private networks (a segment of the tenants' physical network each, chosen by
the control plane) and the operators' provider networks (a segment they name), granted to chosen
municipalities. Subnets may overlap between municipalities (each network is its own segment) but never among
the networks one municipality uses."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from controlplane.config import settings
from controlplane.context import Principal
from controlplane.core import ipam
from controlplane.core.audit import audited, created
from controlplane.core.authz import require_operator
from controlplane.core.quotas import lock_tenant
from controlplane.core.tx import check_version, paginate, transaction
from controlplane.db import db
from controlplane.errors import Conflict, Forbidden, Msg, QuotaExceeded, ValidationFailed, not_found
from controlplane.models import Network, NetworkGrant, NetworkKind, Port, Tenant


def _tenant_for(actor: Principal, requested: str | None) -> str:
    if actor.is_operator:
        if not requested:
            raise ValidationFailed("Operators must say for which municipality (tenant_id).",
                                   errors={"tenant_id": ["Required for operators."]})
        return requested
    if not actor.is_tenant_admin:
        raise Forbidden(Msg("Only municipal admins manage networks.", "Solo los administradores municipales "
                                                                     "administran redes."))
    if requested and requested != actor.tenant_id:
        raise not_found("tenant", requested)
    assert actor.tenant_id is not None
    return actor.tenant_id


def networks_of(tenant_id: str) -> Any:
    """The networks a municipality uses: its private ones and the provider networks granted to it."""
    granted = select(NetworkGrant.network_id).where(NetworkGrant.tenant_id == tenant_id)
    return or_(Network.tenant_id == tenant_id, Network.id.in_(granted))


def _check_overlap(tenant_id: str, cidr: str, skip: str | None = None) -> None:
    for net in db.session.execute(select(Network).where(networks_of(tenant_id))).scalars():
        if net.id != skip and ipam.overlaps(net.cidr, cidr):
            raise Conflict(Msg(f"{cidr} overlaps {net.cidr} of network {net.name!r}, which this municipality uses.",
                               f"{cidr} se superpone con {net.cidr} de la red {net.name!r}, que este municipio usa."),
                           network_id=net.id)


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    sub = ipam.subnet(data["cidr"], data.get("gateway"), data.get("allocation_start"), data.get("allocation_end"))
    dns = [str(ipam.parse_address(d, "dns")) for d in data.get("dns") or []]
    out = {"cidr": str(sub.network), "gateway": str(sub.gateway) if sub.gateway else None, "dns": dns,
           "alloc_start": str(sub.start), "alloc_end": str(sub.end)}
    if data.get("cidr6"):
        net6 = ipam.parse_cidr(data["cidr6"], "cidr6", version=6)
        out["cidr6"] = str(net6)
        out["gateway6"] = str(ipam.parse_address(data["gateway6"], "gateway6")) if data.get("gateway6") else None
    return out


def _free_segment(physnet: str) -> int:
    first, last = settings().segments
    used = set(db.session.execute(select(Network.segment).where(Network.physnet == physnet)).scalars())
    for segment in range(first, last + 1):
        if segment not in used:
            return segment
    raise Conflict(Msg(f"No free segment left on {physnet} (range {first}-{last}).",
                       f"No quedan segmentos libres en {physnet} (rango {first}-{last})."))


def create_network(actor: Principal, data: dict[str, Any]) -> Network:
    kind = data.get("kind") or NetworkKind.PRIVATE.value
    fields = _fields(data)
    base = {"name": data["name"], "kind": kind, "description": data.get("description"), "created_by": actor.user_id}
    if kind == NetworkKind.PROVIDER:
        require_operator(actor)
        if data.get("tenant_id"):
            raise ValidationFailed("A provider network belongs to no municipality; grant it instead.",
                                   errors={"tenant_id": ["Not for provider networks."]})
        if not data.get("physnet") or data.get("segment") is None:
            raise ValidationFailed("A provider network needs its physnet and segment.",
                                   errors={"segment": ["Required for provider networks."]})
    elif data.get("physnet") or data.get("segment") is not None:
        raise ValidationFailed("The control plane chooses a private network's segment.",
                               errors={"segment": ["Only for provider networks (operators)."]})
    with transaction(keep_loaded=True):
        if kind == NetworkKind.PROVIDER:
            net = Network(**base, **fields, tenant_id=None, physnet=data["physnet"], segment=data["segment"])
            if db.session.execute(select(Network.id).where(Network.physnet == net.physnet,
                                                           Network.segment == net.segment)).first():
                raise Conflict(Msg(f"Segment {net.segment} of {net.physnet} is taken by another network.",
                                   f"El segmento {net.segment} de {net.physnet} ya lo usa otra red."))
        else:
            tenant = lock_tenant(_tenant_for(actor, data.get("tenant_id")))
            _check_quota(tenant)
            _check_overlap(tenant.id, fields["cidr"])
            physnet = settings().tenant_physnet
            net = Network(**base, **fields, tenant_id=tenant.id, physnet=physnet, segment=_free_segment(physnet))
        db.session.add(net)
        try:
            with db.session.begin_nested():
                db.session.flush()
        except IntegrityError:
            raise Conflict(Msg("Another network took that segment at the same moment; retry.",
                               "Otra red tomó ese segmento en el mismo momento; reintente.")) from None
        created(actor, "network.create", net)
    return net


def _check_quota(tenant: Tenant) -> None:
    count = db.session.execute(select(func.count()).select_from(Network).where(
        Network.tenant_id == tenant.id)).scalar_one()
    if count + 1 > tenant.quota_networks:
        raise QuotaExceeded(Msg(f"{tenant.name} has {count} networks of {tenant.quota_networks} allowed.",
                                f"{tenant.name} tiene {count} redes de {tenant.quota_networks} permitidas."),
                            quota={"networks": {"limit": tenant.quota_networks, "used": int(count), "requested": 1,
                                                "available": max(tenant.quota_networks - count, 0)}})


def list_networks(actor: Principal, *, tenant_id: str | None = None, kind: str | None = None, limit: int = 50,
                  offset: int = 0) -> tuple[list[Network], int]:
    stmt = select(Network).order_by(Network.name, Network.id)
    if not actor.is_operator:
        stmt = stmt.where(networks_of(actor.tenant_id or ""))
    elif tenant_id:
        stmt = stmt.where(networks_of(tenant_id))
    if kind:
        stmt = stmt.where(Network.kind == kind)
    return paginate(stmt, limit, offset)


def get_network(actor: Principal, network_id: str, *, lock: bool = False) -> Network:
    stmt = select(Network).where(Network.id == network_id)
    if not actor.is_operator:
        stmt = stmt.where(networks_of(actor.tenant_id or ""))
    net = db.session.execute(stmt.with_for_update(of=Network) if lock else stmt).scalar_one_or_none()
    if net is None:
        raise not_found("network", network_id)
    return net


def _may_change(actor: Principal, net: Network) -> None:
    if actor.is_operator or (actor.is_tenant_admin and net.tenant_id == actor.tenant_id):
        return
    raise Forbidden(Msg("Only operators change provider networks, and municipal admins their own.",
                        "Solo los operadores cambian redes de proveedor, y los administradores municipales las suyas."))


def update_network(actor: Principal, network_id: str, changes: dict[str, Any], if_match: int | None) -> Network:
    with transaction():
        net = get_network(actor, network_id, lock=True)
        _may_change(actor, net)
        check_version(net.version, if_match)
        if "dns" in changes:
            changes["dns"] = [str(ipam.parse_address(d, "dns")) for d in changes["dns"] or []]
        with audited(actor, "network.update", net):
            for key, value in changes.items():
                setattr(net, key, value)
    return net


def delete_network(actor: Principal, network_id: str, if_match: int | None) -> None:
    with transaction():
        net = get_network(actor, network_id, lock=True)
        _may_change(actor, net)
        check_version(net.version, if_match)
        ports = db.session.execute(select(func.count()).select_from(Port).where(Port.network_id == net.id)).scalar_one()
        if ports:
            raise Conflict(Msg(f"Network {net.name!r} still has {ports} ports; delete their VMs or ports first.",
                               f"La red {net.name!r} todavía tiene {ports} puertos; borre antes sus VMs o puertos."),
                           ports=int(ports))
        with audited(actor, "network.delete", net) as change:
            change.removed = True
            db.session.delete(net)


def grant(actor: Principal, network_id: str, tenant_id: str) -> Network:
    """Operators: let a municipality use a provider network."""
    require_operator(actor)
    with transaction():
        net = get_network(actor, network_id, lock=True)
        if net.kind != NetworkKind.PROVIDER:
            raise Conflict(Msg("Only provider networks are granted to municipalities.",
                               "Solo las redes de proveedor se otorgan a municipios."))
        tenant = lock_tenant(tenant_id)
        if db.session.get(NetworkGrant, (net.id, tenant.id)) is None:
            _check_overlap(tenant.id, net.cidr, skip=net.id)
            with audited(actor, "network.grant", net, tenant_id=tenant.id):
                db.session.add(NetworkGrant(network_id=net.id, tenant_id=tenant.id))
    return net


def revoke(actor: Principal, network_id: str, tenant_id: str) -> None:
    require_operator(actor)
    with transaction():
        net = get_network(actor, network_id, lock=True)
        row = db.session.get(NetworkGrant, (net.id, tenant_id))
        if row is None:
            raise not_found("grant", tenant_id)
        if db.session.execute(select(Port.id).where(Port.network_id == net.id, Port.tenant_id == tenant_id)).first():
            raise Conflict(Msg("That municipality still has ports on this network.",
                               "Ese municipio todavía tiene puertos en esta red."))
        with audited(actor, "network.revoke", net, tenant_id=tenant_id):
            db.session.delete(row)


def grants_of(net: Network) -> list[str]:
    return list(db.session.execute(select(NetworkGrant.tenant_id).where(NetworkGrant.network_id == net.id)
                                   .order_by(NetworkGrant.tenant_id)).scalars())


def usable_network(tenant_id: str, ref: str, field: str = "networks") -> Network:
    """A network the municipality may put a VM on, by id or name (422 otherwise: another municipality's
    network is never confirmed)."""
    rows = list(db.session.execute(select(Network).where(networks_of(tenant_id),
                                                         (Network.id == ref) | (Network.name == ref))).scalars())
    if len(rows) != 1:
        en = f"Unknown network {ref!r}; see GET /v1/networks." if not rows else f"Several networks are called {ref!r}."
        es = f"Red desconocida {ref!r}; vea GET /v1/networks." if not rows else f"Hay varias redes llamadas {ref!r}."
        raise ValidationFailed(Msg(en, es), errors={field: [en]})
    return rows[0]
