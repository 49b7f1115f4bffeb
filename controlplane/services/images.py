"""Images VMs boot from. Request half (:func:`create_image`): who may import what from where, the quota of
private images, the image recorded ``importing`` and its operation sent. Worker half (:func:`run_import`):
fetch the file into the image store, check its SHA-256 against the declared one, inspect it (qcow2 or raw,
no backing or data file, virtual size within the declared minimum disk), keep it as ``<id>.<format>`` and
mark the image ``active``; anything wrong ends it ``error`` with the reason, and nothing half-written stays.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import or_, select

from agents import OperationTimeout
from agents.image_files import FetchFailed, ImageInfo, ImageRejected, fetch, inspect
from controlplane.config import settings
from controlplane.context import SYSTEM, Principal
from controlplane.core.audit import audited, created
from controlplane.core.image_urls import valid
from controlplane.core.leases import Finished, finish_op, load_operation, start_op
from controlplane.core.outbox import enqueue, new_operation
from controlplane.core.quotas import lock_tenant, private_images
from controlplane.core.tx import after_commit, check_version, paginate, transaction
from controlplane.db import db
from controlplane.errors import Conflict, Forbidden, Msg, QuotaExceeded, ValidationFailed, not_found
from controlplane.models import VM, Image, ImageState, Operation, OpKind, VMState
from controlplane.models.base import utcnow

CHECKSUM_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
GIB = 1 << 30
SLACK_BYTES = 64 << 20  # a qcow2 file may exceed its virtual size by its metadata


def image_path(image: Image) -> Path:
    return settings().images_path / f"{image.id}.{image.format}"


# --- request half --------------------------------------------------------------------------------------

def _bad(field: str, en: str, es: str) -> ValidationFailed:
    return ValidationFailed(Msg(en, es), errors={field: [en]})


def _check_source(actor: Principal, source: str) -> str:
    parts = urlsplit(source)
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise _bad("source", "The URL has no host.", "La URL no tiene host.")
        if not actor.is_operator:
            _refuse_internal(parts.hostname)
        return source
    if not actor.is_operator:
        raise _bad("source", "Municipalities import images from an http(s) URL.",
                   "Los municipios importan imágenes desde una URL http(s).")
    if parts.scheme not in ("", "file") or not parts.path.startswith("/"):
        raise _bad("source", "Give an http(s) URL or an absolute path.",
                   "Indique una URL http(s) o una ruta absoluta.")
    real = Path(os.path.realpath(parts.path))
    dirs = [Path(os.path.realpath(d)) for d in settings().import_dirs]
    if not any(real.is_relative_to(d) for d in dirs):
        allowed = ", ".join(str(d) for d in dirs) or "(none configured: CONFLUENCIA_IMAGE_IMPORT_DIRS)"
        raise _bad("source", f"Local files can only be imported from {allowed}.",
                   f"Solo se importan archivos locales desde {allowed}.")
    if not real.is_file():
        raise _bad("source", f"There is no file {real}.", f"No existe el archivo {real}.")
    return str(real)


def _refuse_internal(hostname: str) -> None:
    """A municipality's URL must not make the control plane fetch from itself or link-local services."""
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(hostname, None)}
    except OSError:
        raise _bad("source", f"The host {hostname} cannot be resolved.",
                   f"No se resuelve el host {hostname}.") from None
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast:
            raise _bad("source", "That address is not allowed for image imports.",
                       "Esa dirección no está permitida para importar imágenes.")


def _owner(actor: Principal, data: dict[str, Any]) -> str | None:
    visibility = data.pop("visibility", None) or ("public" if actor.is_operator else "private")
    requested = data.pop("tenant_id", None)
    if actor.is_operator:
        if visibility == "public":
            if requested:
                raise _bad("tenant_id", "A public image belongs to no municipality.",
                           "Una imagen pública no pertenece a un municipio.")
            return None
        if not requested:
            raise _bad("tenant_id", "Say which municipality keeps the private image.",
                       "Indique qué municipio guarda la imagen privada.")
        return str(requested)
    if not actor.is_tenant_admin:
        raise Forbidden(Msg("Only municipal admins import images.", "Solo los administradores municipales "
                                                                   "importan imágenes."))
    if visibility == "public":
        raise Forbidden(Msg("Only operators publish public images.", "Solo los operadores publican imágenes "
                                                                    "públicas."))
    if requested and requested != actor.tenant_id:
        raise not_found("tenant", str(requested))
    return actor.tenant_id


def create_image(actor: Principal, data: dict[str, Any]) -> tuple[Image, Operation]:
    data = dict(data)
    tenant_id = _owner(actor, data)
    if not CHECKSUM_RE.match(data["checksum"]):
        raise _bad("checksum", "The checksum must be sha256:<64 lowercase hex digits>.",
                   "El checksum debe ser sha256:<64 dígitos hexadecimales en minúscula>.")
    data["source"] = _check_source(actor, data["source"])
    with transaction(keep_loaded=True):
        if tenant_id is not None:
            tenant = lock_tenant(tenant_id)
            kept = private_images(tenant_id)
            if kept + 1 > tenant.quota_images:
                raise QuotaExceeded(Msg(f"{tenant.name} keeps {kept} private images of {tenant.quota_images} "
                                        f"allowed.", f"{tenant.name} guarda {kept} imágenes privadas de "
                                        f"{tenant.quota_images} permitidas."),
                                    quota={"images": {"limit": tenant.quota_images, "used": int(kept),
                                                      "requested": 1, "available": max(tenant.quota_images - kept, 0)}})
        image = Image(tenant_id=tenant_id, state=ImageState.IMPORTING.value, created_by=actor.user_id,
                      **{k: v for k, v in data.items() if v is not None})
        db.session.add(image)
        db.session.flush()
        op = new_operation(OpKind.IMAGE_IMPORT, actor, target_type="image", target_id=image.id, tenant_id=tenant_id)
        created(actor, "image.create", image, operation=op)
        enqueue(op)
    return image, op


def visible(actor: Principal) -> Any:
    return or_(Image.tenant_id.is_(None), Image.tenant_id == actor.tenant_id)


def list_images(actor: Principal, *, name: str | None = None, os_name: str | None = None,
                visibility: str | None = None, state: str | None = None, tenant_id: str | None = None,
                limit: int = 50, offset: int = 0) -> tuple[list[Image], int]:
    stmt = select(Image).order_by(Image.name, Image.created_at, Image.id)
    if not actor.is_operator:
        stmt = stmt.where(visible(actor))
    elif tenant_id:
        stmt = stmt.where(Image.tenant_id == tenant_id)
    if visibility:
        stmt = stmt.where(Image.tenant_id.is_(None) if visibility == "public" else Image.tenant_id.is_not(None))
    stmt = stmt.where(Image.state == state) if state else stmt.where(Image.state != ImageState.DELETED.value)
    if name:
        stmt = stmt.where(Image.name.contains(name, autoescape=True))
    if os_name:
        stmt = stmt.where(Image.os_name == os_name)
    return paginate(stmt, limit, offset)


def get_image(actor: Principal, image_id: str, *, lock: bool = False) -> Image:
    stmt = select(Image).where(Image.id == image_id)
    image = db.session.execute(stmt.with_for_update() if lock else stmt).scalar_one_or_none()
    if image is None or not (actor.is_operator or image.tenant_id in (None, actor.tenant_id)):
        raise not_found("image", image_id)
    return image


def _may_change(actor: Principal, image: Image) -> None:
    if actor.is_operator or (actor.is_tenant_admin and image.tenant_id == actor.tenant_id):
        return
    raise Forbidden(Msg("Only operators change public images, and municipal admins their own.",
                        "Solo los operadores cambian imágenes públicas, y los administradores municipales las suyas."))


def update_image(actor: Principal, image_id: str, changes: dict[str, Any], if_match: int | None) -> Image:
    with transaction():
        image = get_image(actor, image_id, lock=True)
        _may_change(actor, image)
        check_version(image.version, if_match)
        with audited(actor, "image.update", image):
            for key, value in changes.items():
                setattr(image, key, value)
    return image


def delete_image(actor: Principal, image_id: str, if_match: int | None) -> None:
    """Remove an image no live VM boots from (VMs made from it keep their own disks on their hosts)."""
    with transaction():
        image = get_image(actor, image_id, lock=True)
        _may_change(actor, image)
        check_version(image.version, if_match)
        if image.state == ImageState.IMPORTING:
            raise Conflict(Msg("The image is still being imported; delete it when the import is over.",
                               "La imagen todavía se está importando; bórrela cuando termine."))
        user = db.session.execute(select(VM.name).where(VM.image_id == image.id,
                                                        VM.state != VMState.DELETED.value)).first()
        if user is not None:
            raise Conflict(Msg(f"VM {user[0]!r} was made from this image and still exists.",
                               f"La VM {user[0]!r} se creó con esta imagen y todavía existe."))
        path = image_path(image) if image.format else None
        with audited(actor, "image.delete", image):
            image.state, image.deleted_at = ImageState.DELETED.value, utcnow()
        if path is not None:
            after_commit(lambda: path.unlink(missing_ok=True))


def file_for_download(image_id: str, expires: str, signature: str) -> Path:
    """The stored file of an active image behind a valid signed link (404 for anything else)."""
    image = db.session.get(Image, image_id) if valid(image_id, expires, signature) else None
    if image is None or image.state != ImageState.ACTIVE or not image_path(image).is_file():
        raise not_found("image", image_id)
    return image_path(image)


def usable_image(actor_tenant: str, ref: str, field: str = "image") -> Image:
    """An active image the municipality sees, by id or name (422 on ``field`` otherwise)."""
    rows = list(db.session.execute(select(Image).where(
        or_(Image.id == ref, Image.name == ref), or_(Image.tenant_id.is_(None), Image.tenant_id == actor_tenant),
        Image.state != ImageState.DELETED.value)).scalars())
    if len(rows) > 1:
        rows = [r for r in rows if r.id == ref] or rows
    if not rows:
        raise _bad(field, f"Unknown image {ref!r}; see GET /v1/images.",
                   f"Imagen desconocida {ref!r}; vea GET /v1/images.")
    if len(rows) > 1:
        raise _bad(field, f"Several images are called {ref!r}; give the id.",
                   f"Hay varias imágenes llamadas {ref!r}; indique el id.")
    image = rows[0]
    if image.state != ImageState.ACTIVE:
        raise _bad(field, f"Image {image.name!r} is {image.state}, not active.",
                   f"La imagen {image.name!r} está en estado {image.state}, no activa.")
    return image


# --- worker half ---------------------------------------------------------------------------------------

def run_import(op_id: str) -> None:
    with transaction():
        try:
            op = load_operation(op_id)
        except Finished:
            return
        image = db.session.execute(select(Image).where(Image.id == op.target_id).with_for_update()).scalar_one()
        if image.state != ImageState.IMPORTING:
            finish_op(op, image.state == ImageState.ACTIVE, image.status_reason)
            return
        start_op(op)
        store = settings().images_path
        source, checksum, declared = image.source, image.checksum, image.format
        limit, image_id, attempt = image.min_disk_gib * GIB + SLACK_BYTES, image.id, op.attempts
    store.mkdir(parents=True, exist_ok=True)
    part = store / f".{image_id}.{attempt}.part"
    try:
        fetched = fetch(source, part, max_bytes=limit)
        if f"sha256:{fetched.sha256}" != checksum:
            raise ImageRejected(f"checksum mismatch: declared {checksum}, the file has sha256:{fetched.sha256}")
        info = inspect(part, declared)
        if info.virtual_size_bytes > limit - SLACK_BYTES:
            raise ImageRejected(f"virtual size {info.virtual_size_bytes} bytes exceeds the declared minimum disk "
                                f"({limit - SLACK_BYTES} bytes)")
        final = store / f"{image_id}.{info.format}"
        part.chmod(0o644)  # hypervisor hosts read it (an upload, or the same file on a shared mount)
        os.replace(part, final)
    except ImageRejected as exc:
        part.unlink(missing_ok=True)
        give_up(op_id, str(exc))
        return
    except FetchFailed as exc:
        part.unlink(missing_ok=True)
        raise OperationTimeout(str(exc), code="FETCH_FAILED") from exc  # transient: the runner retries
    _settle(op_id, info)


def _settle(op_id: str, info: ImageInfo) -> None:
    with transaction():
        op = load_operation(op_id)
        image = db.session.execute(select(Image).where(Image.id == op.target_id).with_for_update()).scalar_one()
        with audited(SYSTEM, "image.import.succeeded", image, operation=op):
            image.format, image.size_bytes = info.format, info.size_bytes
            image.virtual_size_bytes, image.state, image.status_reason = info.virtual_size_bytes, "active", None
            finish_op(op, True)


def give_up(op_id: str, reason: str) -> None:
    """The import cannot succeed: the image is ``error`` with the reason (only deletion is left)."""
    with transaction():
        try:
            op = load_operation(op_id)
        except Finished:
            return
        image = db.session.execute(select(Image).where(Image.id == op.target_id).with_for_update()).scalar_one()
        with audited(SYSTEM, "image.import.failed", image, operation=op, error=reason):
            image.state, image.status_reason = ImageState.ERROR.value, reason[:2000]
            finish_op(op, False, reason)
