"""Users and their roles."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.schemas.common import Name, PageArgs, StrictSchema


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


class UserListArgs(PageArgs):
    tenant_id = fields.String(validate=validate.Length(max=36))
