"""/v1/operations: the asynchronous operations behind every 202 (a municipality sees its own)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.http import principal
from api.schemas import operations as s
from api.schemas.common import page, page_schema
from controlplane.services import operations

bp = Blueprint("operations", __name__, url_prefix="/v1/operations",
               description="Asynchronous operations / Operaciones asíncronas")


@bp.route("", methods=["GET"])
@bp.arguments(s.OperationListArgs, location="query")
@bp.response(200, page_schema(s.Operation, "OperationPage"))
def list_operations(args: dict[str, Any]) -> dict[str, Any]:
    filters = {k: v for k, v in args.items() if k not in ("limit", "offset")}
    items, total = operations.list_operations(principal(), limit=args["limit"], offset=args["offset"], **filters)
    return page(items, total, args)


@bp.route("/<op_id>", methods=["GET"])
@bp.response(200, s.Operation)
def get_operation(op_id: str) -> Any:
    return operations.get_operation(principal(), op_id)
