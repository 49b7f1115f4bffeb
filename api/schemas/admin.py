"""Schemas of the operator side: hosts, municipalities (tenants), users, tokens, flavors."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from api.schemas.common import Count, Name, PageArgs, Slug, StrictSchema

DRIVERS = ["simulated", "libvirt", "proxmox"]
HOST_STATES = ["enabled", "maintenance", "disabled", "down"]


def Ratio() -> fields.Float:
    return fields.Float(validate=validate.Range(min=0.1, max=64.0), allow_nan=False)


class HostCreate(StrictSchema):
    name = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,61}[A-Za-z0-9])?$", error="A host name: letters, digits, '.', '-'."))
    driver = fields.String(required=True, validate=validate.OneOf(DRIVERS))
    uri = fields.String(required=True, validate=validate.Length(min=1, max=500))
    vcpus = Count(1, 4096, required=True)
    ram_mib = Count(256, 64 * 1024 * 1024, required=True)
    disk_gib = Count(1, 1024 * 1024, required=True)
    reserved_vcpus = Count(0, 4096)
    reserved_ram_mib = Count(0, 64 * 1024 * 1024)
    reserved_disk_gib = Count(0, 1024 * 1024)
    cpu_ratio = Ratio()
    ram_ratio = Ratio()
    disk_ratio = Ratio()
    zone = Name(allow_none=True)
    state = fields.String(validate=validate.OneOf(HOST_STATES))
    exclude_from_rebalance = fields.Boolean(metadata={"description": "Never a source or target of rebalancing"})
    options = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=64)),
                          values=fields.String(validate=validate.Length(max=2000)), load_only=True,
                          metadata={"description": "Driver options, e.g. Proxmox token_id/token_secret. "
                                                   "Write-only: never returned."})


class HostUpdate(HostCreate):
    """Every field optional (PATCH). marshmallow has no ``Meta.partial``: load partially by default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("partial", True)
        super().__init__(*args, **kwargs)

    state_reason = fields.String(validate=validate.Length(max=500), allow_none=True)


class HostUsage(Schema):
    capacity = fields.Dict()
    allocated = fields.Dict()
    utilisation = fields.Dict()
    vms = fields.Integer()


class Host(Schema):
    id = fields.String()
    name = fields.String()
    driver = fields.String()
    uri = fields.String()
    vcpus = fields.Integer()
    ram_mib = fields.Integer()
    disk_gib = fields.Integer()
    reserved_vcpus = fields.Integer()
    reserved_ram_mib = fields.Integer()
    reserved_disk_gib = fields.Integer()
    cpu_ratio = fields.Float()
    ram_ratio = fields.Float()
    disk_ratio = fields.Float()
    zone = fields.String(allow_none=True)
    state = fields.String()
    state_reason = fields.String(allow_none=True)
    exclude_from_rebalance = fields.Boolean()
    option_keys = fields.List(fields.String(), metadata={"description": "Names of the driver options set"})
    version = fields.Integer()
    usage = fields.Nested(HostUsage)
    created_at = fields.DateTime()


class HostListArgs(PageArgs):
    state = fields.String(validate=validate.OneOf(HOST_STATES))
    zone = fields.String(validate=validate.Length(max=63))
    driver = fields.String(validate=validate.OneOf(DRIVERS))


class MaintenanceArgs(StrictSchema):
    reason = fields.String(validate=validate.Length(max=500), load_default=None)


class TenantCreate(StrictSchema):
    slug = Slug(required=True)
    name = Name(200, required=True)
    quota_vcpus = Count(0, 1_000_000, load_default=0)
    quota_ram_mib = Count(0, 2**31 - 1, load_default=0)
    quota_disk_gib = Count(0, 2**31 - 1, load_default=0)
    quota_vms = Count(0, 100_000, load_default=0)


class TenantUpdate(StrictSchema):
    name = Name(200)
    exclude_from_rebalance = fields.Boolean(metadata={"description": "Rebalancing leaves its VMs where they are"})
    quota_vcpus = Count(0, 1_000_000)
    quota_ram_mib = Count(0, 2**31 - 1)
    quota_disk_gib = Count(0, 2**31 - 1)
    quota_vms = Count(0, 100_000)


class Tenant(Schema):
    id = fields.String()
    slug = fields.String()
    name = fields.String()
    quota_vcpus = fields.Integer()
    quota_ram_mib = fields.Integer()
    quota_disk_gib = fields.Integer()
    quota_vms = fields.Integer()
    exclude_from_rebalance = fields.Boolean()
    version = fields.Integer()
    created_at = fields.DateTime()


class UserCreate(StrictSchema):
    username = fields.String(required=True, validate=validate.Regexp(
        r"^[a-z0-9][a-z0-9._@-]{0,99}$", error="Lowercase letters, digits and . _ @ -, up to 100 characters."))
    display_name = Name(200, load_default="")
    role = fields.String(required=True, validate=validate.OneOf(["member", "admin", "operator"]))
    tenant_id = fields.String(validate=validate.Length(equal=36), allow_none=True, load_default=None)


class User(Schema):
    id = fields.String()
    username = fields.String()
    display_name = fields.String()
    role = fields.String()
    tenant_id = fields.String(allow_none=True)
    created_at = fields.DateTime()


class TokenCreate(StrictSchema):
    user_id = fields.String(validate=validate.Length(equal=36), metadata={"description": "Default: yourself"})
    name = Name(100, required=True)
    expires_at = fields.AwareDateTime(allow_none=True, load_default=None, default_timezone=None)


class Token(Schema):
    id = fields.String()
    name = fields.String()
    prefix = fields.String()
    user_id = fields.String()
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)
    token = fields.String(metadata={"description": "The secret: shown only once, at creation"})


class FlavorCreate(StrictSchema):
    name = Name(required=True)
    vcpus = Count(1, 256, required=True)
    ram_mib = Count(16, 4 * 1024 * 1024, required=True)
    disk_gib = Count(0, 64 * 1024, required=True)
    description = fields.String(validate=validate.Length(max=500), load_default="")


class UserListArgs(PageArgs):
    tenant_id = fields.String(validate=validate.Length(max=36))
