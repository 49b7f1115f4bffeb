"""/v1/security-groups: inbound allow rules for a municipality's VMs (everything else inbound is dropped)."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, url_for
from flask_smorest import Blueprint

from api.http import principal
from api.idempotency import idempotent
from api.openapi import LOCATION
from api.schemas import networks as s
from api.schemas.common import page, page_schema
from controlplane.models import SecurityGroup
from controlplane.services import security_groups as groups

bp = Blueprint("security_groups", __name__, url_prefix="/v1/security-groups",
               description="Security groups / Grupos de seguridad")


def _raw(group: SecurityGroup) -> dict[str, Any]:
    return {"id": group.id, "name": group.name, "tenant_id": group.tenant_id, "description": group.description,
            "created_at": group.created_at, "rules": groups.rules_of(group)}


@bp.route("", methods=["POST"])
@idempotent
@bp.arguments(s.GroupCreate)
@bp.response(201, s.Group, headers=LOCATION)
def create_group(args: dict[str, Any]) -> Response:
    group = groups.create_group(principal(), args)
    resp = jsonify(s.Group().dump(_raw(group)))
    resp.status_code = 201
    resp.headers["Location"] = url_for("security_groups.get_group", group=group.id)
    return resp


@bp.route("", methods=["GET"])
@bp.arguments(s.GroupListArgs, location="query")
@bp.response(200, page_schema(s.Group, "GroupPage"))
def list_groups(args: dict[str, Any]) -> dict[str, Any]:
    """Your groups (`default` is made on first use: its members reach each other)."""
    items, total = groups.list_groups(principal(), args.get("tenant_id"), args["limit"], args["offset"])
    return page([_raw(g) for g in items], total, args)


@bp.route("/<group>", methods=["GET"])
@bp.response(200, s.Group)
def get_group(group: str) -> dict[str, Any]:
    """By id, or by name in your municipality."""
    return _raw(groups.get_group(principal(), group))


@bp.route("/<group>", methods=["DELETE"])
@bp.response(204)
def delete_group(group: str) -> None:
    groups.delete_group(principal(), group)


@bp.route("/<group>/rules", methods=["POST"])
@idempotent
@bp.arguments(s.RuleCreate)
@bp.response(201, s.Rule)
def add_rule(args: dict[str, Any], group: str) -> Any:
    """Allow inbound traffic; applied at once on the hosts of the group's VMs."""
    return groups.add_rule(principal(), group, args)


@bp.route("/<group>/rules/<rule_id>", methods=["DELETE"])
@bp.response(204)
def delete_rule(group: str, rule_id: str) -> None:
    groups.delete_rule(principal(), group, rule_id)
