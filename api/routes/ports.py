"""/v1/ports: the addresses of a municipality's VMs, and reserved addresses."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, url_for
from flask_smorest import Blueprint

from api.http import principal
from api.idempotency import idempotent
from api.openapi import LOCATION
from api.schemas import networks as s
from api.schemas.common import page, page_schema
from controlplane.services import ports

bp = Blueprint("ports", __name__, url_prefix="/v1/ports", description="Ports and addresses / Puertos y direcciones")


@bp.route("", methods=["POST"])
@idempotent
@bp.arguments(s.PortCreate)
@bp.response(201, s.Port, headers=LOCATION)
@bp.alt_response(409, description="The address is taken / La dirección está en uso")
def create_port(args: dict[str, Any]) -> Response:
    """Reserve an address (the next free one, or a fixed one): name the port in a VM request's `networks`."""
    port = ports.create_port(principal(), args)
    resp = jsonify(s.Port().dump(port))
    resp.status_code = 201
    resp.headers["Location"] = url_for("ports.get_port", port_id=port.id)
    return resp


@bp.route("", methods=["GET"])
@bp.arguments(s.PortListArgs, location="query")
@bp.response(200, page_schema(s.Port, "PortPage"))
def list_ports(args: dict[str, Any]) -> dict[str, Any]:
    filters = {k: v for k, v in args.items() if k not in ("limit", "offset")}
    items, total = ports.list_ports(principal(), limit=args["limit"], offset=args["offset"], **filters)
    return page(items, total, args)


@bp.route("/<port_id>", methods=["GET"])
@bp.response(200, s.Port)
def get_port(port_id: str) -> Any:
    return ports.get_port(principal(), port_id)


@bp.route("/<port_id>", methods=["DELETE"])
@bp.response(204)
@bp.alt_response(409, description="A VM uses it / Una VM lo usa")
def delete_port(port_id: str) -> None:
    ports.delete_port(principal(), port_id)
