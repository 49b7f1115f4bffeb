"""Monthly usage per municipality (showback)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


class UsageArgs(Schema):
    month = fields.String(validate=validate.Regexp(MONTH, error="YYYY-MM, e.g. 2026-12"), metadata={
        "description": "Calendar month in the province's time zone, YYYY-MM (default: the current one)"})
    tenant_id = fields.String(validate=validate.Length(max=36), metadata={"description": "Operators only"})
    format = fields.String(validate=validate.OneOf(["json", "csv"]), load_default="json",
                           metadata={"description": "json (default) or csv; or send Accept: text/csv"})


class Figures(Schema):
    running_seconds = fields.Integer()
    stopped_seconds = fields.Integer()
    vcpu_seconds = fields.Integer()
    ram_mib_seconds = fields.Integer()
    disk_gib_seconds = fields.Integer(metadata={"description": "Disk counts while running and while stopped"})
    running_hours = fields.Float()
    stopped_hours = fields.Float()
    vcpu_hours = fields.Float()
    ram_gib_hours = fields.Float()
    disk_gib_hours = fields.Float()
    cost = fields.String(metadata={"description": "With a price sheet: showback cost, 2 decimals"})


class VMUsage(Figures):
    vm_id = fields.String()
    vm_name = fields.String()


class TenantUsage(Schema):
    tenant_id = fields.String()
    tenant = fields.String(allow_none=True, metadata={"description": "The municipality's slug"})
    vms = fields.List(fields.Nested(VMUsage))
    totals = fields.Nested(Figures)


class UsageReport(Schema):
    month = fields.String()
    time_zone = fields.String()
    from_ = fields.DateTime(data_key="from")
    to = fields.DateTime()
    counted_until = fields.DateTime(metadata={"description": "Now, for a month not finished yet"})
    currency = fields.String(allow_none=True)
    tenants = fields.List(fields.Nested(TenantUsage))
