"""/v1/audit: who did what, newest first (a municipality sees its own entries)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api.http import principal
from api.schemas import audit as s
from api.schemas.common import page, page_schema
from controlplane.services import audit

bp = Blueprint("audit", __name__, url_prefix="/v1/audit", description="Audit trail / Auditoría")


@bp.route("", methods=["GET"])
@bp.arguments(s.AuditListArgs, location="query")
@bp.response(200, page_schema(s.AuditEntry, "AuditPage"))
def list_audit(args: dict[str, Any]) -> dict[str, Any]:
    """Who did what, newest first, with before/after and the hash chain (your municipality's entries)."""
    items, total = audit.list_audit(principal(), action=args.get("action"), target_id=args.get("target_id"),
                                    tenant_id=args.get("tenant_id"), limit=args["limit"], offset=args["offset"])
    return page(items, total, args)
