"""SSH keypairs."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.schemas.common import Name, PageArgs, StrictSchema


class KeypairCreate(StrictSchema):
    name = Name(required=True)
    public_key = fields.String(validate=validate.Length(min=1, max=16384), metadata={
        "description": "One OpenSSH public key line; leave it out to have an Ed25519 keypair generated"})
    tenant_id = fields.String(validate=validate.Length(equal=36), metadata={"description": "Operators only"})


class Keypair(Schema):
    id = fields.String()
    name = fields.String()
    tenant_id = fields.String()
    public_key = fields.String()
    key_type = fields.String()
    fingerprint = fields.String()
    created_at = fields.DateTime()


class KeypairCreated(Keypair):
    private_key = fields.String(allow_none=True, metadata={
        "description": "Only when the keypair was generated: the private key, shown this once"})


class KeypairListArgs(PageArgs):
    tenant_id = fields.String(validate=validate.Length(max=36), metadata={"description": "Operators only"})
