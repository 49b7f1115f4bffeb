"""Asynchronous operations (the resource behind every 202)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.schemas.common import PageArgs


class Operation(Schema):
    id = fields.String()
    kind = fields.String()
    tenant_id = fields.String(allow_none=True)
    target_type = fields.String()
    target_id = fields.String()
    status = fields.String()
    progress = fields.Integer()
    error = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)
    attempts = fields.Integer()
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class OperationListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(["pending", "running", "succeeded", "failed"]))
    target_id = fields.String(validate=validate.Length(max=36))
    kind = fields.String(validate=validate.Length(max=40))
