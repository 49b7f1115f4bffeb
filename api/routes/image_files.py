"""/image-files/<id>: an image's file behind a signed, expiring link, for hypervisors that download images
themselves (Proxmox VE ``download-url``). No bearer token: the link is the credential. Not part of /v1."""

from __future__ import annotations

from flask import Blueprint, Response, request, send_file

from controlplane.services import images

bp = Blueprint("image_files", __name__)


@bp.get("/image-files/<image_id>")
def image_file(image_id: str) -> Response:
    path = images.file_for_download(image_id, request.args.get("expires", ""), request.args.get("signature", ""))
    return send_file(path, mimetype="application/octet-stream", conditional=True, max_age=0,
                     download_name=path.name)
