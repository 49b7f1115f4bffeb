"""/v1/flavors: everyone lists the VM sizes, operators add them."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.http import operator_only, principal
from api.idempotency import idempotent
from api.schemas import flavors as s
from api.schemas.common import PageArgs, page, page_schema
from controlplane.services import flavors

bp = Blueprint("flavors", __name__, url_prefix="/v1/flavors", description="VM sizes / Tamaños de VM")


@bp.route("", methods=["GET"])
@bp.arguments(PageArgs, location="query")
@bp.response(200, page_schema(s.Flavor, "FlavorPage"))
def list_flavors(args: dict[str, Any]) -> dict[str, Any]:
    items, total = flavors.list_flavors(args["limit"], args["offset"])
    return page(items, total, args)


@bp.route("", methods=["POST"])
@operator_only
@idempotent
@bp.arguments(s.FlavorCreate)
@bp.response(201, s.Flavor)
def create_flavor(args: dict[str, Any]) -> Any:
    """Operators: add a flavor."""
    return flavors.create_flavor(principal(), args)
