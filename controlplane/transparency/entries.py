"""The hashed form of an audit entry: what a leaf of the audit tree is made of.

An entry's leaf input is the UTF-8 JSON object of the fields in :data:`HASHED_FIELDS`, with sorted keys, no
whitespace (separators ``,`` and ``:``) and non-ASCII characters escaped (``\\u00e9``), so that it has exactly one
byte form. Its leaf hash is ``SHA-256(0x00 || leaf input)`` (RFC 9162 section 2.1.1).

- ``v``: the form's version (2; version 1 was the hash chain before the tree).
- ``tenant_seq``: the entry's number among its municipality's entries (1, 2, 3, ...; the province's own entries,
  with no municipality, are numbered among themselves). A gap shows a removed entry.
- ``salt``: 32 random hex digits. Inclusion proofs show a municipality hashes of other municipalities' entries;
  with a salt nobody can test a guess ("did they delete VM x at 10:02?") against those hashes.
- ``at`` (UTC, ISO 8601 with ``Z``, whole seconds), ``actor_id``, ``actor_name``, ``actor_role``, ``tenant_id``,
  ``action``, ``target_type``, ``target_id``, ``request_id``, ``operation_id``, ``before``, ``after``: as the API
  shows them (``null`` when absent).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from controlplane.transparency.merkle import leaf_hash

FORM_VERSION = 2
HASHED_FIELDS = ("v", "tenant_seq", "salt", "at", "actor_id", "actor_name", "actor_role", "tenant_id", "action",
                 "target_type", "target_id", "request_id", "operation_id", "before", "after")


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def leaf_input(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's leaf hashes; ``entry`` holds at least :data:`HASHED_FIELDS` (others are ignored)."""
    missing = [name for name in HASHED_FIELDS if name not in entry]
    if missing:
        raise ValueError(f"the entry lacks {', '.join(missing)}")
    return canonical_json({name: entry[name] for name in HASHED_FIELDS})


def entry_leaf_hash(entry: Mapping[str, Any]) -> bytes:
    return leaf_hash(leaf_input(entry))
