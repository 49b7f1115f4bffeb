"""Keypairs: SSH public keys a municipality keeps by name and names in its VM requests."""

from __future__ import annotations

from sqlalchemy import select

from controlplane.context import Principal
from controlplane.core.audit import audited, created
from controlplane.core.quotas import lock_tenant
from controlplane.core.sshkeys import generate, parse_key
from controlplane.core.tx import paginate, transaction
from controlplane.db import db
from controlplane.errors import Forbidden, Msg, ValidationFailed, not_found
from controlplane.models import Keypair


def _tenant(actor: Principal, requested: str | None) -> str:
    if actor.is_operator:
        if not requested:
            raise ValidationFailed("Operators must say for which municipality (tenant_id).",
                                   errors={"tenant_id": ["Required for operators."]})
        return requested
    if requested and requested != actor.tenant_id:
        raise not_found("tenant", requested)
    assert actor.tenant_id is not None
    return actor.tenant_id


def create_keypair(actor: Principal, name: str, public_key: str | None,
                   tenant_id: str | None = None) -> tuple[Keypair, str | None]:
    """Import ``public_key``, or generate an Ed25519 keypair and return its private key (shown once)."""
    tenant = _tenant(actor, tenant_id)
    private = None
    if public_key is not None:
        key = parse_key(public_key)
    else:
        key, private = generate(f"{name}@confluencia")
    with transaction(keep_loaded=True):
        lock_tenant(tenant)  # an operator's tenant_id must name a municipality (404 otherwise)
        if db.session.execute(select(Keypair.id).where(Keypair.tenant_id == tenant, Keypair.name == name)).first():
            raise ValidationFailed(Msg(f"Keypair {name!r} exists.", f"El par de claves {name!r} ya existe."),
                                   errors={"name": ["Already taken."]})
        kp = Keypair(tenant_id=tenant, name=name, public_key=key.line, key_type=key.key_type,
                     fingerprint=key.fingerprint, created_by=actor.user_id)
        db.session.add(kp)
        created(actor, "keypair.create", kp)
    return kp, private


def list_keypairs(actor: Principal, tenant_id: str | None, limit: int, offset: int) -> tuple[list[Keypair], int]:
    stmt = select(Keypair).order_by(Keypair.name, Keypair.id)
    if not actor.is_operator:
        stmt = stmt.where(Keypair.tenant_id == actor.tenant_id)
    elif tenant_id:
        stmt = stmt.where(Keypair.tenant_id == tenant_id)
    return paginate(stmt, limit, offset)


def get_keypair(actor: Principal, ref: str, *, tenant_id: str | None = None) -> Keypair:
    """By id, or by name within the actor's municipality (or ``tenant_id`` for operators)."""
    scope = tenant_id if actor.is_operator else actor.tenant_id
    stmt = select(Keypair).where((Keypair.id == ref) | ((Keypair.name == ref) & (Keypair.tenant_id == scope)))
    kp = db.session.execute(stmt).scalars().first()
    if kp is None or not actor.can_see_tenant(kp.tenant_id):
        raise not_found("keypair", ref)
    return kp


def keypair_for_vm(tenant_id: str, ref: str) -> Keypair:
    """The keypair a VM request names (422 on ``key_name`` when the municipality has none of that name)."""
    stmt = select(Keypair).where(Keypair.tenant_id == tenant_id, Keypair.name == ref)
    kp = db.session.execute(stmt).scalars().first()
    if kp is None:
        raise ValidationFailed(Msg(f"Unknown keypair {ref!r}; see GET /v1/keypairs.",
                                   f"Par de claves desconocido {ref!r}; vea GET /v1/keypairs."),
                               errors={"key_name": ["Unknown keypair."]})
    return kp


def delete_keypair(actor: Principal, ref: str) -> None:
    """VMs that got the key keep it; new VMs cannot name it any more."""
    with transaction():
        kp = get_keypair(actor, ref)
        if not (actor.is_operator or actor.is_tenant_admin or kp.created_by == actor.user_id):
            raise Forbidden(Msg("Members may only delete the keypairs they created.",
                                "Los miembros solo pueden borrar los pares de claves que crearon."))
        with audited(actor, "keypair.delete", kp) as change:
            change.removed = True
            db.session.delete(kp)
