"""Signed statements of the audit log: tree heads and per-municipality receipts, signed with Ed25519.

A signed statement is a JSON object with a ``signature`` member: the base64 Ed25519 signature of the canonical
JSON (:func:`~controlplane.transparency.entries.canonical_json`) of the object without ``signature``. Its ``kind``
says what it states:

- ``tree-head``: ``tree_size``, ``root_hash`` (hex), ``timestamp``, ``key_id``: the log had these leaves then.
- ``tenant-receipt``: ``tenant_id``, ``tree_size``, ``entries``, ``key_id``: this municipality has exactly
  ``entries`` entries among the first ``tree_size`` leaves (an export cannot leave its newest ones out).

``key_id`` is the hex SHA-256 of the raw 32-byte public key; the control plane publishes its key at
``/.well-known/confluencia-audit-key``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from controlplane.transparency.entries import canonical_json

LOG_NAME = "confluencia-audit"


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the audit key must be an Ed25519 public key")
    return key


def sign(private_key: Ed25519PrivateKey, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
    statement = {"log": LOG_NAME, "kind": kind, **body, "key_id": key_id(private_key.public_key())}
    signature = private_key.sign(canonical_json(statement))
    return {**statement, "signature": base64.b64encode(signature).decode()}


def verify(public_key: Ed25519PublicKey, statement: Mapping[str, Any], kind: str) -> bool:
    """True when ``statement`` is a ``kind`` statement of this log signed by ``public_key``."""
    body = {k: v for k, v in statement.items() if k != "signature"}
    if body.get("log") != LOG_NAME or body.get("kind") != kind or body.get("key_id") != key_id(public_key):
        return False
    try:
        public_key.verify(base64.b64decode(str(statement.get("signature", "")), validate=True), canonical_json(body))
    except (InvalidSignature, ValueError):
        return False
    return True
