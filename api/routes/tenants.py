"""/v1/tenants (operators create and change municipalities; a municipality reads its own) and /v1/quota."""

from __future__ import annotations

from typing import Any

from flask import Response, url_for
from flask_smorest import Blueprint
from marshmallow import fields

from api.http import if_match, operator_only, principal, with_etag
from api.idempotency import idempotent
from api.openapi import ETAG, ETAG_LOCATION, reads_if_match
from api.schemas import tenants as s
from api.schemas.common import PageArgs, StrictSchema, page, page_schema
from controlplane.services import tenants

bp = Blueprint("tenants", __name__, url_prefix="/v1/tenants", description="Municipalities / Municipios")
quota_bp = Blueprint("quota", __name__, url_prefix="/v1/quota", description="Quota and usage / Cuota y uso")


class QuotaArgs(StrictSchema):
    tenant_id = fields.String(metadata={"description": "Operators only"})


@bp.route("", methods=["POST"])
@operator_only
@idempotent
@bp.arguments(s.TenantCreate)
@bp.response(201, s.Tenant, headers=ETAG_LOCATION)
def create_tenant(args: dict[str, Any]) -> Response:
    t = tenants.create_tenant(principal(), args)
    return with_etag(s.Tenant().dump(t), t.version, 201, url_for("tenants.get_tenant", tenant_id=t.id))


@bp.route("", methods=["GET"])
@operator_only
@bp.arguments(PageArgs, location="query")
@bp.response(200, page_schema(s.Tenant, "TenantPage"))
def list_tenants(args: dict[str, Any]) -> dict[str, Any]:
    items, total = tenants.list_tenants(principal(), args["limit"], args["offset"])
    return page(items, total, args)


@bp.route("/<tenant_id>", methods=["GET"])
@bp.response(200, s.Tenant, headers=ETAG)
def get_tenant(tenant_id: str) -> Response:
    t = tenants.get_tenant(principal(), tenant_id)
    return with_etag(s.Tenant().dump(t), t.version)


@bp.route("/<tenant_id>", methods=["PATCH"])
@operator_only
@reads_if_match(required=True)
@bp.arguments(s.TenantUpdate)
@bp.response(200, s.Tenant, headers=ETAG)
def update_tenant(args: dict[str, Any], tenant_id: str) -> Response:
    """Change name or quotas (needs `If-Match`). Lowering a quota below use keeps existing VMs."""
    t = tenants.update_tenant(principal(), tenant_id, args, if_match(required=True))
    return with_etag(s.Tenant().dump(t), t.version)


@quota_bp.route("", methods=["GET"])
@quota_bp.arguments(QuotaArgs, location="query")
@quota_bp.response(200, s.Quota)
def get_quota(args: dict[str, Any]) -> dict[str, Any]:
    """Your municipality's quota, what is used and what is left, per resource."""
    who = principal()
    tenant_id = args.get("tenant_id") if who.is_operator else who.tenant_id
    tenant = tenants.get_tenant(who, tenant_id or "")
    return {"tenant_id": tenant.id, "tenant": tenant.name, **tenants.quota_report(tenant)}
