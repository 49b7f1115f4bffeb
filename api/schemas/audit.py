"""The audit trail."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.schemas.common import PageArgs


class AuditEntry(Schema):
    seq = fields.Integer()
    at = fields.DateTime()
    actor_id = fields.String(allow_none=True)
    actor_name = fields.String()
    actor_role = fields.String()
    tenant_id = fields.String(allow_none=True)
    action = fields.String()
    target_type = fields.String()
    target_id = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)
    before = fields.Dict(allow_none=True)
    after = fields.Dict(allow_none=True)
    prev_hash = fields.String(allow_none=True, metadata={"description": "null until the entry is sealed"})
    entry_hash = fields.String(allow_none=True, metadata={"description": "null until the entry is sealed"})


class AuditListArgs(PageArgs):
    action = fields.String(validate=validate.Length(max=60), metadata={"description": "prefix, e.g. vm."})
    target_id = fields.String(validate=validate.Length(max=36))
    tenant_id = fields.String(validate=validate.Length(max=36), metadata={"description": "Operators only"})
