"""/v1/volumes: data volumes a municipality creates, attaches to its VMs, extends, detaches and deletes."""

from __future__ import annotations

from typing import Any

from flask import Response, url_for
from flask_smorest import Blueprint

from api.http import accepted, if_match, principal, with_etag
from api.idempotency import idempotent
from api.openapi import ETAG, ETAG_LOCATION, LOCATION, reads_if_match
from api.schemas import operations as ops
from api.schemas import volumes as s
from api.schemas.common import page, page_schema
from controlplane.services import volumes

bp = Blueprint("volumes", __name__, url_prefix="/v1/volumes", description="Data volumes / Volúmenes de datos")
VOLUME = s.Volume()


@bp.route("", methods=["POST"])
@idempotent
@bp.arguments(s.VolumeCreate)
@bp.response(201, s.Volume, headers=ETAG_LOCATION)
@bp.alt_response(403, description="Disk quota / Cuota de disco")
@bp.alt_response(409, description="The pool is full (`/problems/insufficient-storage`) / El pool está lleno")
def create_volume(args: dict[str, Any]) -> Response:
    """Create an empty volume in a shared pool; it counts against the disk quota from now on."""
    vol = volumes.create_volume(principal(), args)
    return with_etag(VOLUME.dump(vol), vol.version, 201, url_for("volumes.get_volume", volume_id=vol.id))


@bp.route("", methods=["GET"])
@bp.arguments(s.VolumeListArgs, location="query")
@bp.response(200, page_schema(s.Volume, "VolumePage"))
def list_volumes(args: dict[str, Any]) -> dict[str, Any]:
    filters = {k: v for k, v in args.items() if k not in ("limit", "offset")}
    items, total = volumes.list_volumes(principal(), limit=args["limit"], offset=args["offset"], **filters)
    return page(items, total, args)


@bp.route("/<volume_id>", methods=["GET"])
@bp.response(200, s.Volume, headers=ETAG)
def get_volume(volume_id: str) -> Response:
    vol = volumes.get_volume(principal(), volume_id)
    return with_etag(VOLUME.dump(vol), vol.version)


@bp.route("/<volume_id>/attach", methods=["POST"])
@reads_if_match()
@idempotent
@bp.arguments(s.AttachArgs)
@bp.response(202, ops.Operation, headers=LOCATION)
def attach_volume(args: dict[str, Any], volume_id: str) -> Response:
    """Attach to one of your VMs (ACTIVE or STOPPED): a running guest sees the disk at once."""
    op = volumes.attach_volume(principal(), volume_id, args["vm_id"], if_match())
    return accepted(op, ops.Operation().dump(op))


@bp.route("/<volume_id>/detach", methods=["POST"])
@reads_if_match()
@idempotent
@bp.response(202, ops.Operation, headers=LOCATION)
def detach_volume(volume_id: str) -> Response:
    """Detach from its VM; the data is kept."""
    op = volumes.detach_volume(principal(), volume_id, if_match())
    return accepted(op, ops.Operation().dump(op))


@bp.route("/<volume_id>/extend", methods=["POST"])
@reads_if_match()
@idempotent
@bp.arguments(s.ExtendArgs)
@bp.response(202, ops.Operation, headers=LOCATION)
def extend_volume(args: dict[str, Any], volume_id: str) -> Response:
    """Grow to `size_gib` (never shrink); an attached running guest sees the new size."""
    op = volumes.extend_volume(principal(), volume_id, args["size_gib"], if_match())
    return accepted(op, ops.Operation().dump(op))


@bp.route("/<volume_id>", methods=["DELETE"])
@reads_if_match()
@bp.response(202, ops.Operation, headers=LOCATION)
def delete_volume(volume_id: str) -> Response:
    """Delete a detached volume and its data."""
    op = volumes.delete_volume(principal(), volume_id, if_match())
    return accepted(op, ops.Operation().dump(op))
