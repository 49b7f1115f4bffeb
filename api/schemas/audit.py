"""The audit trail and its verifiable export."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.schemas.common import PageArgs


class AuditEntry(Schema):
    seq = fields.Integer(metadata={"description": "Operators only: the entry's place among all entries"})
    at = fields.DateTime()
    actor_id = fields.String(allow_none=True)
    actor_name = fields.String()
    actor_role = fields.String()
    tenant_id = fields.String(allow_none=True)
    action = fields.String()
    target_type = fields.String()
    target_id = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)
    operation_id = fields.String(allow_none=True)
    before = fields.Dict(allow_none=True)
    after = fields.Dict(allow_none=True)
    tenant_seq = fields.Integer(allow_none=True, metadata={
        "description": "The entry's number among its municipality's entries (1, 2, ...); null until sealed"})
    leaf_index = fields.Integer(allow_none=True, metadata={"description": "Its leaf in the audit tree"})
    entry_hash = fields.String(allow_none=True, metadata={"description": "RFC 9162 leaf hash; null until sealed"})


class AuditListArgs(PageArgs):
    action = fields.String(validate=validate.Length(max=60), metadata={"description": "prefix, e.g. vm."})
    target_id = fields.String(validate=validate.Length(max=36))
    tenant_id = fields.String(validate=validate.Length(max=36), metadata={"description": "Operators only"})


class AuditExportArgs(Schema):
    previous_size = fields.Integer(validate=validate.Range(min=1), metadata={
        "description": "tree_size of the head of your previous export: the export then proves the log only grew"})
    tenant_id = fields.String(validate=validate.Length(max=36), metadata={
        "description": "Operators only: a municipality's export (without it, the province's own entries)"})


class SignedStatement(Schema):
    """A tree head or receipt: the JSON without ``signature`` is what the Ed25519 signature signs."""

    log = fields.String()
    kind = fields.String(metadata={"description": "tree-head or tenant-receipt"})
    tree_size = fields.Integer()
    root_hash = fields.String(metadata={"description": "tree-head: hex SHA-256 root of the first tree_size leaves"})
    timestamp = fields.String(metadata={"description": "tree-head: when it was signed (UTC)"})
    tenant_id = fields.String(allow_none=True, metadata={"description": "tenant-receipt"})
    entries = fields.Integer(metadata={"description": "tenant-receipt: the municipality's entries in the tree"})
    key_id = fields.String(metadata={"description": "hex SHA-256 of the raw Ed25519 public key"})
    signature = fields.String(metadata={"description": "base64 Ed25519 signature"})


class ExportEntry(Schema):
    leaf_index = fields.Integer()
    leaf_hash = fields.String()
    entry = fields.Dict(metadata={"description": "The entry's hashed form (see the README, 'Verifiable audit')"})
    inclusion = fields.List(fields.String(), metadata={"description": "RFC 9162 audit path, hex"})


class Consistency(Schema):
    from_size = fields.Integer()
    proof = fields.List(fields.String(), metadata={"description": "RFC 9162 consistency proof, hex"})


class AuditExport(Schema):
    format = fields.String()
    tenant_id = fields.String(allow_none=True)
    head = fields.Nested(SignedStatement)
    receipt = fields.Nested(SignedStatement)
    previous_head = fields.Nested(SignedStatement, allow_none=True)
    consistency = fields.Nested(Consistency, allow_none=True)
    entries = fields.List(fields.Nested(ExportEntry))
