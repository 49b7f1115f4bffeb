"""API tokens (the secret is shown once)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.schemas.common import Name, PageArgs, StrictSchema


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


class TokenListArgs(PageArgs):
    tenant_id = fields.String(validate=validate.Length(max=36), metadata={"description": "Operators only"})
    user_id = fields.String(validate=validate.Length(max=36))
