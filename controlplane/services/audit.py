"""The audit trail as municipalities and operators read it, its verifiable export, and its verification."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from controlplane.context import Principal
from controlplane.core.audit import ChainReport, hashed_form, verify_chain
from controlplane.core.audit_tree import (
    HeadCheck,
    current_tree,
    public_key_document,
    sign_head,
    signing_key,
    verify_heads,
)
from controlplane.core.tx import paginate
from controlplane.db import db
from controlplane.errors import Msg, NotFound, ValidationFailed
from controlplane.models import AuditEntry, AuditTreeHead
from controlplane.transparency import heads
from controlplane.transparency.merkle import Tree
from controlplane.transparency.verify import EXPORT_FORMAT

__all__ = ["ChainReport", "export", "list_audit", "public_key_document", "verify"]


def _scope(actor: Principal, tenant_id: str | None) -> Any:
    """A municipality's own entries; for an operator one municipality's, or the province's own (no tenant)."""
    tenant = tenant_id if actor.is_operator else actor.tenant_id
    return AuditEntry.tenant_id.is_(None) if tenant is None else AuditEntry.tenant_id == tenant


def list_audit(actor: Principal, *, action: str | None, target_id: str | None, tenant_id: str | None,
               limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Newest first; a municipality sees only its own entries, numbered among themselves (``tenant_seq``), and
    no sequence number of the whole log; an operator sees all (or one municipality's)."""
    stmt = select(AuditEntry).order_by(AuditEntry.seq.desc())
    if not actor.is_operator:
        stmt = stmt.where(AuditEntry.tenant_id == actor.tenant_id)
    elif tenant_id:
        stmt = stmt.where(AuditEntry.tenant_id == tenant_id)
    if action:
        stmt = stmt.where(AuditEntry.action.startswith(action, autoescape=True))
    if target_id:
        stmt = stmt.where(AuditEntry.target_id == target_id)
    rows, total = paginate(stmt, limit, offset)
    return [_view(entry, actor.is_operator) for entry in rows], total


def _view(entry: AuditEntry, operator: bool) -> dict[str, Any]:
    view = {name: getattr(entry, name) for name in (
        "at", "actor_id", "actor_name", "actor_role", "tenant_id", "action", "target_type", "target_id",
        "request_id", "operation_id", "before", "after", "tenant_seq", "entry_hash")}
    view["leaf_index"] = entry.chain_seq - 1 if entry.chain_seq is not None else None
    if operator:
        view["seq"] = entry.seq
    return view


def export(actor: Principal, *, tenant_id: str | None, previous_size: int | None) -> dict[str, Any]:
    """Every entry of the scope in the newest signed tree, each with its inclusion proof; the signed head, a
    signed receipt of how many entries the scope has in it and, from ``previous_size`` (the head the caller
    was given last time), the consistency proof. Checked offline by ``confluencia-audit-verify``."""
    key = signing_key()
    head = sign_head()
    if previous_size is not None and previous_size > head.tree_size:
        raise ValidationFailed(Msg(
            f"previous_size {previous_size} is larger than the log ({head.tree_size} entries).",
            f"previous_size {previous_size} es mayor que el registro ({head.tree_size} entradas)."))
    previous = db.session.get(AuditTreeHead, previous_size) if previous_size else None
    if previous_size and previous is None:
        raise NotFound(Msg(f"No tree head of size {previous_size} was signed.",
                           f"No se firmó ninguna cabeza de árbol de tamaño {previous_size}."))
    tree = current_tree()
    scope = _scope(actor, tenant_id)
    rows = list(db.session.execute(select(AuditEntry).where(scope, AuditEntry.chain_seq <= head.tree_size)
                                   .order_by(AuditEntry.chain_seq)).scalars())
    tenant = tenant_id if actor.is_operator else actor.tenant_id
    receipt = heads.sign(key, "tenant-receipt", {"tenant_id": tenant, "tree_size": head.tree_size,
                                                 "entries": len(rows)})
    return {
        "format": EXPORT_FORMAT,
        "tenant_id": tenant,
        "head": head.statement,
        "receipt": receipt,
        "previous_head": previous.statement if previous is not None else None,
        "consistency": {"from_size": previous.tree_size,
                        "proof": [h.hex() for h in tree.consistency_proof(previous.tree_size, head.tree_size)]}
        if previous is not None else None,
        "entries": [_exported(row, tree, head.tree_size) for row in rows],
    }


def _exported(row: AuditEntry, tree: Tree, size: int) -> dict[str, Any]:
    index = int(row.chain_seq or 0) - 1  # sealed: every row up to the head has its leaf
    return {"leaf_index": index, "leaf_hash": row.entry_hash, "entry": hashed_form(row),
            "inclusion": [h.hex() for h in tree.inclusion_proof(index, size)]}


def latest_head_statement() -> dict[str, Any]:
    return dict(sign_head().statement)


@dataclass(frozen=True)
class Verification:
    chain: ChainReport
    heads: HeadCheck

    @property
    def ok(self) -> bool:
        return self.chain.ok and self.heads.ok


def verify() -> Verification:
    """Recompute every leaf and every signed head (the ``confluencia audit verify`` command)."""
    report = Verification(verify_chain(), verify_heads())
    db.session.rollback()
    return report
