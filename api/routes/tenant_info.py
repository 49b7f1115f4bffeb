"""/v1/flavors, /v1/quota, /v1/operations, /v1/audit: what a municipality may read about itself."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import fields

from api.http import principal
from api.schemas import tenant as s
from api.schemas.common import PageArgs, StrictSchema, page, page_schema
from controlplane.services import catalog, operations, tenants

flavors_bp = Blueprint("flavors", __name__, url_prefix="/v1/flavors", description="VM sizes / Tamaños de VM")
quota_bp = Blueprint("quota", __name__, url_prefix="/v1/quota", description="Quota and usage / Cuota y uso")
ops_bp = Blueprint("operations", __name__, url_prefix="/v1/operations",
                   description="Asynchronous operations / Operaciones asíncronas")
audit_bp = Blueprint("audit", __name__, url_prefix="/v1/audit", description="Audit trail / Auditoría")


class QuotaArgs(StrictSchema):
    tenant_id = fields.String(metadata={"description": "Operators only"})


@flavors_bp.route("", methods=["GET"])
@flavors_bp.arguments(PageArgs, location="query")
@flavors_bp.response(200, page_schema(s.Flavor, "FlavorPage"))
def list_flavors(args: dict[str, Any]) -> dict[str, Any]:
    items, total = catalog.list_flavors(args["limit"], args["offset"])
    return page(items, total, args)


@quota_bp.route("", methods=["GET"])
@quota_bp.arguments(QuotaArgs, location="query")
@quota_bp.response(200, s.Quota)
def get_quota(args: dict[str, Any]) -> dict[str, Any]:
    """Your municipality's quota, what is used and what is left, per resource."""
    who = principal()
    tenant_id = args.get("tenant_id") if who.is_operator else who.tenant_id
    tenant = tenants.get_tenant(who, tenant_id or "")
    return {"tenant_id": tenant.id, "tenant": tenant.name, **tenants.quota_report(tenant)}


@ops_bp.route("", methods=["GET"])
@ops_bp.arguments(s.OperationListArgs, location="query")
@ops_bp.response(200, page_schema(s.Operation, "OperationPage"))
def list_operations(args: dict[str, Any]) -> dict[str, Any]:
    filters = {k: v for k, v in args.items() if k not in ("limit", "offset")}
    items, total = operations.list_operations(principal(), limit=args["limit"], offset=args["offset"], **filters)
    return page(items, total, args)


@ops_bp.route("/<op_id>", methods=["GET"])
@ops_bp.response(200, s.Operation)
def get_operation(op_id: str) -> Any:
    return operations.get_operation(principal(), op_id)


@audit_bp.route("", methods=["GET"])
@audit_bp.arguments(s.AuditListArgs, location="query")
@audit_bp.response(200, page_schema(s.AuditEntry, "AuditPage"))
def list_audit(args: dict[str, Any]) -> dict[str, Any]:
    """Who did what, newest first, with before/after and the hash chain (your municipality's entries)."""
    items, total = catalog.list_audit(principal(), action=args.get("action"), target_id=args.get("target_id"),
                                      tenant_id=args.get("tenant_id"), limit=args["limit"], offset=args["offset"])
    return page(items, total, args)
