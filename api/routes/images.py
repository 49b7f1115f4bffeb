"""/v1/images: the images VMs boot from; public ones for every municipality, private ones of one."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_smorest import Blueprint

from api.http import accepted, if_match, principal, with_etag
from api.idempotency import idempotent
from api.openapi import ETAG, ETAG_LOCATION, reads_if_match
from api.schemas import images as s
from api.schemas.common import page, page_schema
from controlplane.services import images

bp = Blueprint("images", __name__, url_prefix="/v1/images", description="Disk images / Imágenes de disco")
IMAGE = s.Image()


@bp.route("", methods=["POST"])
@idempotent
@bp.arguments(s.ImageCreate)
@bp.response(202, s.ImageAccepted, headers=ETAG_LOCATION)
@bp.alt_response(403, description="Quota of private images, or not allowed / Cuota de imágenes, o no permitido")
def create_image(args: dict[str, Any]) -> Response:
    """Import an image (operators: public ones; municipal admins: private ones, under quota).

    The worker fetches the file, checks its SHA-256, reads its format and virtual size (`qemu-img info`) and
    refuses images with a backing file or an external data file, or larger than `min_disk_gib`. Poll the
    operation in `Location` until the image is `active` (or `error`, with `status_reason`)."""
    image, op = images.create_image(principal(), args)
    return accepted(op, {"image": IMAGE.dump(image), "operation_id": op.id}, image.version)


@bp.route("", methods=["GET"])
@bp.arguments(s.ImageListArgs, location="query")
@bp.response(200, page_schema(s.Image, "ImagePage"))
def list_images(args: dict[str, Any]) -> dict[str, Any]:
    """Public images and your municipality's private ones (operators: all)."""
    filters = {k: v for k, v in args.items() if k not in ("limit", "offset")}
    items, total = images.list_images(principal(), limit=args["limit"], offset=args["offset"], **filters)
    return page(items, total, args)


@bp.route("/<image_id>", methods=["GET"])
@bp.response(200, s.Image, headers=ETAG)
def get_image(image_id: str) -> Response:
    image = images.get_image(principal(), image_id)
    return with_etag(IMAGE.dump(image), image.version)


@bp.route("/<image_id>", methods=["PATCH"])
@reads_if_match(required=True)
@bp.arguments(s.ImageUpdate)
@bp.response(200, s.Image, headers=ETAG)
def update_image(args: dict[str, Any], image_id: str) -> Response:
    """Rename or describe an image (operators: public ones; municipal admins: their own). Needs `If-Match`."""
    image = images.update_image(principal(), image_id, args, if_match(required=True))
    return with_etag(IMAGE.dump(image), image.version)


@bp.route("/<image_id>", methods=["DELETE"])
@reads_if_match()
@bp.response(204)
@bp.alt_response(409, description="A VM made from it still exists / Una VM creada con ella todavía existe")
def delete_image(image_id: str) -> None:
    images.delete_image(principal(), image_id, if_match())
