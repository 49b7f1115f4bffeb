"""/v1/networks: a municipality's private networks and the provider networks granted to it."""

from __future__ import annotations

from typing import Any

from flask import Response, url_for
from flask_smorest import Blueprint

from api.http import if_match, operator_only, principal, with_etag
from api.idempotency import idempotent
from api.openapi import ETAG, ETAG_LOCATION, reads_if_match
from api.schemas import networks as s
from api.schemas.common import page, page_schema
from controlplane.models import Network
from controlplane.services import networks

bp = Blueprint("networks", __name__, url_prefix="/v1/networks", description="Networks / Redes")
NETWORK = s.Network()


def _raw(net: Network) -> dict[str, Any]:
    out = {name: getattr(net, name) for name in ("id", "name", "kind", "tenant_id", "cidr", "gateway", "alloc_start",
                                                 "alloc_end", "cidr6", "gateway6", "physnet", "segment",
                                                 "description", "version", "created_at")}
    out["dns"] = list(net.dns or [])
    out["granted_to"] = networks.grants_of(net) if principal().is_operator else []
    return out


def _body(net: Network) -> dict[str, Any]:
    return dict(NETWORK.dump(_raw(net)))


@bp.route("", methods=["POST"])
@idempotent
@bp.arguments(s.NetworkCreate)
@bp.response(201, s.Network, headers=ETAG_LOCATION)
@bp.alt_response(403, description="Quota of networks / Cuota de redes")
@bp.alt_response(409, description="The subnet overlaps one the municipality uses, or the segment is taken")
def create_network(args: dict[str, Any]) -> Response:
    """Municipal admins: a private network (its segment is chosen by the control plane). Operators: also
    provider networks on a physnet and segment of their choice."""
    net = networks.create_network(principal(), args)
    return with_etag(_body(net), net.version, 201, url_for("networks.get_network", network_id=net.id))


@bp.route("", methods=["GET"])
@bp.arguments(s.NetworkListArgs, location="query")
@bp.response(200, page_schema(s.Network, "NetworkPage"))
def list_networks(args: dict[str, Any]) -> dict[str, Any]:
    items, total = networks.list_networks(principal(), tenant_id=args.get("tenant_id"), kind=args.get("kind"),
                                          limit=args["limit"], offset=args["offset"])
    return page([_raw(n) for n in items], total, args)


@bp.route("/<network_id>", methods=["GET"])
@bp.response(200, s.Network, headers=ETAG)
def get_network(network_id: str) -> Response:
    net = networks.get_network(principal(), network_id)
    return with_etag(_body(net), net.version)


@bp.route("/<network_id>", methods=["PATCH"])
@reads_if_match(required=True)
@bp.arguments(s.NetworkUpdate)
@bp.response(200, s.Network, headers=ETAG)
def update_network(args: dict[str, Any], network_id: str) -> Response:
    net = networks.update_network(principal(), network_id, args, if_match(required=True))
    return with_etag(_body(net), net.version)


@bp.route("/<network_id>", methods=["DELETE"])
@reads_if_match()
@bp.response(204)
@bp.alt_response(409, description="The network still has ports / La red todavía tiene puertos")
def delete_network(network_id: str) -> None:
    networks.delete_network(principal(), network_id, if_match())


@bp.route("/<network_id>/grants", methods=["POST"])
@operator_only
@bp.arguments(s.GrantArgs)
@bp.response(200, s.Network)
def grant_network(args: dict[str, Any], network_id: str) -> dict[str, Any]:
    """Operators: let a municipality use a provider network."""
    return _raw(networks.grant(principal(), network_id, args["tenant_id"]))


@bp.route("/<network_id>/grants/<tenant_id>", methods=["DELETE"])
@operator_only
@bp.response(204)
def revoke_network(network_id: str, tenant_id: str) -> None:
    """Operators: take a provider network back (the municipality must have no ports on it)."""
    networks.revoke(principal(), network_id, tenant_id)
