"""Municipalities (tenants), their quotas and what they use."""

from __future__ import annotations

from marshmallow import Schema, fields

from api.schemas.common import Bool, Count, Name, Slug, StrictSchema


class TenantCreate(StrictSchema):
    slug = Slug(required=True)
    name = Name(200, required=True)
    quota_vcpus = Count(0, 1_000_000, load_default=0)
    quota_ram_mib = Count(0, 2**31 - 1, load_default=0)
    quota_disk_gib = Count(0, 2**31 - 1, load_default=0)
    quota_vms = Count(0, 100_000, load_default=0)
    quota_images = Count(0, 10_000, load_default=5)
    quota_networks = Count(0, 1000, load_default=5)
    quota_addresses = Count(0, 1_000_000, load_default=200)


class TenantUpdate(StrictSchema):
    name = Name(200)
    exclude_from_rebalance = Bool(metadata={"description": "Rebalancing leaves its VMs where they are"})
    ha_enabled = Bool(metadata={"description": "Its VMs restart on other hosts when their host is fenced"})
    quota_vcpus = Count(0, 1_000_000)
    quota_ram_mib = Count(0, 2**31 - 1)
    quota_disk_gib = Count(0, 2**31 - 1)
    quota_vms = Count(0, 100_000)
    quota_images = Count(0, 10_000)
    quota_networks = Count(0, 1000)
    quota_addresses = Count(0, 1_000_000)


class Tenant(Schema):
    id = fields.String()
    slug = fields.String()
    name = fields.String()
    quota_vcpus = fields.Integer()
    quota_ram_mib = fields.Integer()
    quota_disk_gib = fields.Integer()
    quota_vms = fields.Integer()
    quota_images = fields.Integer()
    quota_networks = fields.Integer()
    quota_addresses = fields.Integer()
    exclude_from_rebalance = fields.Boolean()
    ha_enabled = fields.Boolean()
    version = fields.Integer()
    created_at = fields.DateTime()


class QuotaLine(Schema):
    limit = fields.Integer()
    used = fields.Integer()
    available = fields.Integer()


class Quota(Schema):
    tenant_id = fields.String()
    tenant = fields.String()
    vcpus = fields.Nested(QuotaLine)
    ram_mib = fields.Nested(QuotaLine)
    disk_gib = fields.Nested(QuotaLine)
    vms = fields.Nested(QuotaLine)
    images = fields.Nested(QuotaLine, metadata={"description": "Private images kept"})
    networks = fields.Nested(QuotaLine, metadata={"description": "Private networks"})
    addresses = fields.Nested(QuotaLine, metadata={"description": "Ports (addresses) on any network"})
