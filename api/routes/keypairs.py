"""/v1/keypairs: SSH public keys a municipality names in its VM requests (``key_name``)."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, url_for
from flask_smorest import Blueprint

from api.http import principal
from api.idempotency import idempotent
from api.openapi import LOCATION
from api.schemas import keypairs as s
from api.schemas.common import page, page_schema
from controlplane.services import keypairs

bp = Blueprint("keypairs", __name__, url_prefix="/v1/keypairs", description="SSH keypairs / Pares de claves SSH")


@bp.route("", methods=["POST"])
@idempotent
@bp.arguments(s.KeypairCreate)
@bp.response(201, s.KeypairCreated, headers=LOCATION)
def create_keypair(args: dict[str, Any]) -> Response:
    """Import a public key, or have an Ed25519 keypair made: its private key is in this answer only."""
    kp, private = keypairs.create_keypair(principal(), args["name"], args.get("public_key"), args.get("tenant_id"))
    resp = jsonify({**s.Keypair().dump(kp), "private_key": private})
    resp.status_code = 201
    resp.headers["Location"] = url_for("keypairs.get_keypair", keypair=kp.id)
    return resp


@bp.route("", methods=["GET"])
@bp.arguments(s.KeypairListArgs, location="query")
@bp.response(200, page_schema(s.Keypair, "KeypairPage"))
def list_keypairs(args: dict[str, Any]) -> dict[str, Any]:
    items, total = keypairs.list_keypairs(principal(), args.get("tenant_id"), args["limit"], args["offset"])
    return page(items, total, args)


@bp.route("/<keypair>", methods=["GET"])
@bp.response(200, s.Keypair)
def get_keypair(keypair: str) -> Any:
    """By id, or by name in your municipality."""
    return keypairs.get_keypair(principal(), keypair)


@bp.route("/<keypair>", methods=["DELETE"])
@bp.response(204)
def delete_keypair(keypair: str) -> None:
    """VMs that already have the key keep it."""
    keypairs.delete_keypair(principal(), keypair)
