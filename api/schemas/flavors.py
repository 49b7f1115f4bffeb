"""Flavors (VM sizes)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.schemas.common import Count, Name, StrictSchema


class FlavorCreate(StrictSchema):
    name = Name(required=True)
    vcpus = Count(1, 256, required=True)
    ram_mib = Count(16, 4 * 1024 * 1024, required=True)
    disk_gib = Count(0, 64 * 1024, required=True)
    description = fields.String(validate=validate.Length(max=500), load_default="")


class Flavor(Schema):
    id = fields.String()
    name = fields.String()
    vcpus = fields.Integer()
    ram_mib = fields.Integer()
    disk_gib = fields.Integer()
    description = fields.String()
