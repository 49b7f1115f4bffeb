"""RFC 9457 problem details: the body of every error response (``application/problem+json``).

This schema documents what ``api.problems.problem_response`` writes; the server never loads it.
"""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields


class QuotaOverrun(Schema):
    limit = fields.Integer(required=True)
    used = fields.Integer(required=True)
    requested = fields.Integer(required=True)
    available = fields.Integer(required=True)


class Problem(Schema):
    """An error, as RFC 9457 problem details. Extension members (``errors``, ``quota``, ``reasons``) appear
    where the problem type has them; clients must ignore members they do not know."""

    class Meta:
        unknown = INCLUDE  # documented as additionalProperties: RFC 9457 allows extension members

    type = fields.String(required=True, metadata={
        "description": "URI reference of the problem type; `GET /problems/<slug>` describes it in English "
                       "and Spanish", "example": "/problems/not-found"})
    title = fields.String(required=True, metadata={
        "description": "Short summary of the type, in the language of `Accept-Language` (en, es)"})
    status = fields.Integer(required=True, metadata={"description": "The HTTP status code"})
    detail = fields.String(required=True, metadata={"description": "What happened in this request"})
    instance = fields.String(required=True, metadata={"description": "The path of the request"})
    request_id = fields.String(metadata={
        "description": "The request id (also in `X-Request-ID`); the server log names it"})
    errors = fields.Dict(keys=fields.String(), metadata={
        "description": "Validation errors (422): field name -> messages, or nested field -> its errors"})
    quota = fields.Dict(keys=fields.String(), values=fields.Nested(QuotaOverrun), metadata={
        "description": "Quota exceeded (403): resource -> limit, used, requested, available"})
    reasons = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "No host has room (409): rejection reason -> number of hosts rejected for it"})
    pinned = fields.List(fields.String(), metadata={
        "description": "Maintenance refused (409): the pinned VMs the host holds"})
    retry_after = fields.Integer(metadata={"description": "Too many requests (429): seconds to wait"})
    checks = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "Not ready (503): dependency -> `ok` or what failed"})
