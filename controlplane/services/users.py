"""Users of the API with their roles: operators create anyone, municipal admins their own municipality's."""

from __future__ import annotations

from sqlalchemy import select

from controlplane.context import Principal
from controlplane.core.audit import created
from controlplane.core.tx import transaction
from controlplane.db import db
from controlplane.errors import Forbidden, Msg, ValidationFailed
from controlplane.models import Role, Tenant, User


def create_user(actor: Principal, username: str, role: str, tenant_id: str | None,
                display_name: str = "") -> User:
    if role not in {r.value for r in Role}:
        roles = [r.value for r in Role]
        raise ValidationFailed(f"unknown role {role!r}", errors={"role": [f"Must be one of {roles}."]})
    if role == Role.OPERATOR and tenant_id is not None:
        raise ValidationFailed("operators belong to no tenant", errors={"tenant_id": ["Must be empty for operators."]})
    if role != Role.OPERATOR and tenant_id is None:
        raise ValidationFailed("tenant users need a tenant", errors={"tenant_id": ["Required for this role."]})
    if not (actor.is_operator or (actor.is_tenant_admin and tenant_id == actor.tenant_id
                                  and role != Role.OPERATOR)):
        raise Forbidden(Msg("Only operators, or admins of the same municipality, may create users.",
                            "Solo operadores, o administradores del mismo municipio, pueden crear usuarios."))
    with transaction():
        if db.session.execute(select(User.id).where(User.username == username)).first():
            raise ValidationFailed(f"username {username!r} is taken",
                                   errors={"username": ["Already taken."]})
        if tenant_id is not None and db.session.get(Tenant, tenant_id) is None:  # else a foreign-key error
            raise ValidationFailed(Msg(f"No municipality with id {tenant_id[:40]!r}.",
                                       f"No existe un municipio con id {tenant_id[:40]!r}."),
                                   errors={"tenant_id": ["Unknown municipality."]})
        user = User(username=username, role=role, tenant_id=tenant_id, display_name=display_name)
        db.session.add(user)
        created(actor, "user.create", user)
    return user


def list_users(actor: Principal, tenant_id: str | None = None) -> list[User]:
    stmt = select(User).order_by(User.username)
    if not actor.is_operator:
        if not actor.is_tenant_admin:
            raise Forbidden(Msg("Only admins may list users.", "Solo los administradores pueden listar usuarios."))
        stmt = stmt.where(User.tenant_id == actor.tenant_id)
    elif tenant_id:
        stmt = stmt.where(User.tenant_id == tenant_id)
    return list(db.session.execute(stmt).scalars())


def may_manage(actor: Principal, user: User) -> bool:
    """Whether ``actor`` may manage ``user`` (and the user's tokens)."""
    if actor.is_operator:
        return True
    if actor.is_tenant_admin:
        return user.tenant_id == actor.tenant_id
    return user.id == actor.user_id
