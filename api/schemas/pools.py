"""Storage pools."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.schemas.common import Bool, Count, Name, StrictSchema

POOL_KINDS = ["local", "shared"]


class PoolCreate(StrictSchema):
    name = Name(required=True, metadata={"description": "The name the hosts' driver options map to a place"})
    kind = fields.String(required=True, validate=validate.OneOf(POOL_KINDS), metadata={
        "description": "`local`: each host's own disks (capacity: the host's disk_gib); `shared`: NFS, Ceph..."})
    capacity_gib = Count(0, 1024 * 1024 * 1024, allow_none=True, metadata={"description": "Shared pools only"})
    is_default = Bool(metadata={"description": "Root disks go here unless a VM names another pool"})
    full_copy = Bool(metadata={"description": "Root disks are full copies of their image (default: "
                                              "copy-on-write overlays on it)"})
    description = fields.String(validate=validate.Length(max=500), allow_none=True)


class PoolUpdate(StrictSchema):
    capacity_gib = Count(0, 1024 * 1024 * 1024, allow_none=True)
    is_default = Bool()
    full_copy = Bool(metadata={"description": "For root disks made from now on"})
    description = fields.String(validate=validate.Length(max=500), allow_none=True)


class PoolUsage(Schema):
    allocated_gib = fields.Integer()
    vms = fields.Integer()
    volumes = fields.Integer()


class Pool(Schema):
    id = fields.String()
    name = fields.String()
    kind = fields.String()
    capacity_gib = fields.Integer(allow_none=True)
    is_default = fields.Boolean()
    full_copy = fields.Boolean()
    description = fields.String(allow_none=True)
    usage = fields.Nested(PoolUsage, metadata={"description": "Operators only"})
    version = fields.Integer()
    created_at = fields.DateTime()
