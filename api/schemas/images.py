"""Disk images."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.schemas.common import Count, Name, PageArgs, StrictSchema

IMAGE_STATES = ["importing", "active", "error", "deleted"]


class ImageCreate(StrictSchema):
    name = Name(required=True)
    source = fields.String(required=True, validate=validate.Length(min=1, max=2000), metadata={
        "description": "http(s) URL, or (operators) an absolute path under CONFLUENCIA_IMAGE_IMPORT_DIRS"})
    checksum = fields.String(required=True, validate=validate.Length(max=80), metadata={
        "description": "sha256:<64 hex digits> of the file; the import fails if the file differs"})
    format = fields.String(validate=validate.OneOf(["qcow2", "raw"]), metadata={
        "description": "Declared format; the file is inspected and must match"})
    min_disk_gib = Count(1, 64 * 1024, required=True, metadata={
        "description": "Smallest root disk: the image's virtual size must fit in it"})
    min_ram_mib = Count(0, 4 * 1024 * 1024, load_default=0)
    os_name = Name(allow_none=True, metadata={"description": "e.g. debian"})
    os_version = Name(allow_none=True, metadata={"description": "e.g. 12"})
    visibility = fields.String(validate=validate.OneOf(["public", "private"]), metadata={
        "description": "public (operators; the default for them) or private (a municipality's own)"})
    tenant_id = fields.String(validate=validate.Length(equal=36), metadata={
        "description": "Operators: the municipality that keeps a private image"})


class ImageUpdate(StrictSchema):
    name = Name()
    os_name = Name(allow_none=True)
    os_version = Name(allow_none=True)
    min_ram_mib = Count(0, 4 * 1024 * 1024)


class Image(Schema):
    id = fields.String()
    name = fields.String()
    visibility = fields.String()
    tenant_id = fields.String(allow_none=True)
    os_name = fields.String(allow_none=True)
    os_version = fields.String(allow_none=True)
    source = fields.String()
    format = fields.String(allow_none=True)
    checksum = fields.String()
    size_bytes = fields.Integer(allow_none=True)
    virtual_size_bytes = fields.Integer(allow_none=True)
    min_disk_gib = fields.Integer()
    min_ram_mib = fields.Integer()
    state = fields.String()
    status_reason = fields.String(allow_none=True)
    version = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class ImageAccepted(Schema):
    image = fields.Nested(Image)
    operation_id = fields.String()


class ImageListArgs(PageArgs):
    name = fields.String(validate=validate.Length(max=63), metadata={"description": "substring"})
    os_name = fields.String(validate=validate.Length(max=63))
    visibility = fields.String(validate=validate.OneOf(["public", "private"]))
    state = fields.String(validate=validate.OneOf(IMAGE_STATES))
    tenant_id = fields.String(validate=validate.Length(max=36), metadata={"description": "Operators only"})
