"""The audit log as a Merkle tree: its leaves, signed tree heads, proofs, and the key that signs.

The leaves are the sealed entries' ``entry_hash`` in ``chain_seq`` order (:mod:`controlplane.core.audit`). Each
process keeps the tree it read last and reads only the leaves added since; it checks the newest leaf it holds
against the database first, so a database that was emptied or replaced (tests, a restore) is read again whole.

The signing key (Ed25519, PEM PKCS#8) comes from ``CONFLUENCIA_AUDIT_KEY_FILE``; without it, the demo (a SQLite
database file) keeps ``confluencia-audit.key`` next to its database, created with mode 0600 on first use; any
other database without a key cannot sign, and the export answers 503 until an operator configures one.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from controlplane.config import Settings, settings
from controlplane.core.audit import seal
from controlplane.core.secrets import demo_key_path
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.errors import Msg, ProblemError
from controlplane.models import AuditEntry, AuditTreeHead
from controlplane.models.base import utcnow
from controlplane.transparency import heads
from controlplane.transparency.merkle import Tree

log = logging.getLogger("confluencia.audit")

DEMO_AUDIT_KEY = "confluencia-audit.key"


class AuditKeyError(ProblemError):
    """No usable signing key: an operator must configure one (503)."""

    slug = "service-unavailable"


NO_KEY = Msg("No audit signing key is configured: set CONFLUENCIA_AUDIT_KEY_FILE to an Ed25519 private key "
             "(`confluencia audit generate-key`) on the API and on every worker.",
             "No hay clave de firma de auditoría: defina CONFLUENCIA_AUDIT_KEY_FILE con una clave privada Ed25519 "
             "(`confluencia audit generate-key`) en la API y en cada worker.")


def generate_key_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption())


def _key_path(s: Settings) -> Path | None:
    if s.audit_key_file:
        return Path(s.audit_key_file)
    path = demo_key_path(s, DEMO_AUDIT_KEY)
    if path is not None and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process of the demo made it first
            return path
        with os.fdopen(fd, "wb") as f:
            f.write(generate_key_pem())
        log.info("created the demo audit signing key %s", path)
    return path


def signing_key(s: Settings | None = None) -> Ed25519PrivateKey:
    path = _key_path(s or settings())
    if path is None:
        raise AuditKeyError(NO_KEY)
    return _load_key(str(path))


@lru_cache(maxsize=4)
def _load_key(path: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise AuditKeyError(Msg(f"Cannot read the audit signing key {path}: {reason}.",
                                f"No se puede leer la clave de firma de auditoría {path}: {reason}.")) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditKeyError(Msg(f"The audit signing key {path} is not an Ed25519 key.",
                                f"La clave de firma de auditoría {path} no es una clave Ed25519."))
    return key


def public_key_document(s: Settings | None = None) -> dict[str, Any]:
    """What ``/.well-known/confluencia-audit-key`` publishes."""
    public = signing_key(s).public_key()
    return {"log": heads.LOG_NAME, "algorithm": "Ed25519", "key_id": heads.key_id(public),
            "public_key_pem": heads.public_pem(public)}


_tree = Tree()
_tree_lock = threading.Lock()


def current_tree() -> Tree:
    """The tree of every sealed leaf, brought up to date with the database (a shared, append-only cache)."""
    with _tree_lock:
        global _tree
        if len(_tree):
            newest = db.session.execute(select(AuditEntry.entry_hash)
                                        .where(AuditEntry.chain_seq == len(_tree))).scalar_one_or_none()
            if newest is None or bytes.fromhex(newest) != _tree.leaves[-1]:
                _tree = Tree()
        for (leaf,) in db.session.execute(select(AuditEntry.entry_hash).where(AuditEntry.chain_seq > len(_tree))
                                          .order_by(AuditEntry.chain_seq)):
            _tree.append(bytes.fromhex(str(leaf)))
        return _tree


def forget_tree() -> None:
    """Drop this process's copy of the tree (after a database restore that kept the newest leaf but not the
    others, which :func:`current_tree` would not notice)."""
    global _tree
    with _tree_lock:
        _tree = Tree()


def latest_head() -> AuditTreeHead | None:
    return db.session.execute(select(AuditTreeHead).order_by(AuditTreeHead.tree_size.desc()).limit(1)
                              ).scalar_one_or_none()


def sign_head() -> AuditTreeHead:
    """Seal what is committed, then sign the tree's head unless the newest signed head already has its size."""
    while seal() > 0:
        pass
    key = signing_key()  # before any write: no key, nothing changes
    tree = current_tree()
    with transaction():
        head = latest_head()
        if head is not None and head.tree_size >= len(tree):
            return head
        statement = heads.sign(key, "tree-head", {"tree_size": len(tree), "root_hash": tree.root().hex(),
                                                 "timestamp": utcnow().replace(microsecond=0).isoformat()})
        head = AuditTreeHead(tree_size=len(tree), root_hash=statement["root_hash"], statement=statement)
        db.session.add(head)
    return head


@dataclass(frozen=True)
class HeadCheck:
    ok: bool
    heads: int
    first_bad_size: int | None = None


def verify_heads() -> HeadCheck:
    """Every signed head's root against the leaves as they are in the database now (read afresh, not the cached
    tree): a changed or removed leaf shows here too."""
    tree = Tree([bytes.fromhex(str(h)) for h in db.session.execute(
        select(AuditEntry.entry_hash).where(AuditEntry.chain_seq.is_not(None)).order_by(AuditEntry.chain_seq)
    ).scalars()])
    count = 0
    for head in db.session.execute(select(AuditTreeHead).order_by(AuditTreeHead.tree_size)).scalars():
        count += 1
        if head.tree_size > len(tree) or tree.root(head.tree_size).hex() != head.root_hash:
            return HeadCheck(ok=False, heads=count, first_bad_size=head.tree_size)
    return HeadCheck(ok=True, heads=count)
