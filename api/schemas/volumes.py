"""Data volumes."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.schemas.common import Count, Name, PageArgs, StrictSchema

VOLUME_STATES = ["available", "attaching", "in-use", "detaching", "extending", "deleting", "deleted", "error"]


class VolumeCreate(StrictSchema):
    name = Name(required=True)
    size_gib = Count(1, 64 * 1024, required=True)
    pool = Name(metadata={"description": "A shared storage pool (default: the default pool)"})
    tenant_id = fields.String(validate=validate.Length(equal=36), metadata={"description": "Operators only"})


class AttachArgs(StrictSchema):
    vm_id = fields.String(required=True, validate=validate.Length(min=1, max=36))


class ExtendArgs(StrictSchema):
    size_gib = Count(1, 64 * 1024, required=True, metadata={"description": "The new size; volumes only grow"})


class Volume(Schema):
    id = fields.String()
    name = fields.String()
    tenant_id = fields.String()
    size_gib = fields.Integer()
    pool_id = fields.String()
    vm_id = fields.String(allow_none=True)
    device = fields.String(allow_none=True, metadata={"description": "As the guest sees it, e.g. vdb"})
    state = fields.String()
    status_reason = fields.String(allow_none=True)
    version = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class VolumeListArgs(PageArgs):
    vm_id = fields.String(validate=validate.Length(max=36))
    state = fields.String(validate=validate.OneOf(VOLUME_STATES))
    tenant_id = fields.String(validate=validate.Length(max=36), metadata={"description": "Operators only"})
