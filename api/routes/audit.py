"""/v1/audit: who did what, newest first (a municipality sees its own entries); its verifiable export and the
signed head of the audit tree; /.well-known/confluencia-audit-key: the key that signs them (no token)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import Response, jsonify
from flask_smorest import Blueprint

from api.http import principal
from api.schemas import audit as s
from api.schemas.common import page, page_schema
from controlplane.services import audit

bp = Blueprint("audit", __name__, url_prefix="/v1/audit", description="Audit trail / Auditoría")
well_known = FlaskBlueprint("audit_key", __name__)


@bp.route("", methods=["GET"])
@bp.arguments(s.AuditListArgs, location="query")
@bp.response(200, page_schema(s.AuditEntry, "AuditPage"))
def list_audit(args: dict[str, Any]) -> dict[str, Any]:
    """Who did what, newest first, with before/after (your municipality's entries, numbered among themselves)."""
    items, total = audit.list_audit(principal(), action=args.get("action"), target_id=args.get("target_id"),
                                    tenant_id=args.get("tenant_id"), limit=args["limit"], offset=args["offset"])
    return page(items, total, args)


@bp.route("/export", methods=["GET"])
@bp.arguments(s.AuditExportArgs, location="query")
@bp.response(200, s.AuditExport)
def export_audit(args: dict[str, Any]) -> dict[str, Any]:
    """Your municipality's entries with their inclusion proofs in the signed audit tree, a signed receipt of
    how many there are and, given ``previous_size`` (the ``tree_size`` of the head of your previous export),
    the proof that the log only grew since. Check it offline: ``confluencia-audit-verify export.json --key
    key.json --previous previous.json``."""
    return audit.export(principal(), tenant_id=args.get("tenant_id"), previous_size=args.get("previous_size"))


@bp.route("/head", methods=["GET"])
@bp.response(200, s.SignedStatement)
def audit_head() -> dict[str, Any]:
    """The newest signed tree head (size and root of the audit tree, Ed25519-signed)."""
    principal()
    return audit.latest_head_statement()


@well_known.get("/.well-known/confluencia-audit-key")
def audit_key() -> Response:
    """The public key that signs the audit tree's heads (PEM and key id); no token needed."""
    return jsonify(audit.public_key_document())
